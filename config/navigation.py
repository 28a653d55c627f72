"""The site header's links (templates/base.html), given to every page by a context processor:
the public sections, the review pages the user's role opens, and Sign in for a visitor (the
signed-in user's menu, with Sign out, is in the template). The link of the section the page
belongs to carries aria-current: "page" on that very page, "true" below it.

The links are worked out only when a template shows them (the template calls the function it
is given): htmx fragments, which have no header, cost nothing, not even the role query."""

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse

from reviews.roles import is_tac


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    # Paths below which a page still belongs to this link's section.
    section: tuple[str, ...] = ()
    current: str = ""


def nav_links(request: HttpRequest) -> dict[str, Callable[[], list[NavLink]]]:
    return {"nav_links": partial(links_for, request)}


def links_for(request: HttpRequest) -> list[NavLink]:
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    links = [
        NavLink("Landscape", reverse("registry:landscape"), section=("/projects/",)),
        NavLink("Runs", reverse("ci_runners:matrix"), section=(reverse("ci_runners:matrix"),)),
    ]
    if signed_in:
        mine = reverse("reviews:mine")
        links += [
            NavLink("Apply", reverse("reviews:apply")),
            NavLink("My applications", mine, section=(f"{mine}applications/",)),
            NavLink(
                "My projects", reverse("reviews:my_projects"), section=("/reviews/my-projects/",)
            ),
        ]
        if is_tac(user):
            dashboard = reverse("reviews:dashboard")
            links.append(
                NavLink("TAC dashboard", dashboard, section=(dashboard, "/reviews/periodic/"))
            )
    links.append(NavLink("API docs", reverse("api-docs")))
    if not signed_in:
        links += [
            NavLink("Sign in", _back_here(reverse("account_login"), request)),
            NavLink("Sign up", reverse("account_signup")),
        ]
    return _mark_current(links, request.path)


def _back_here(url: str, request: HttpRequest) -> str:
    """`url` with ?next= the current page, unless the page is itself an account page."""
    if request.path.startswith("/accounts/") or request.method != "GET":
        return url
    return f"{url}?{urlencode({'next': request.get_full_path()}, safe='/')}"


def _mark_current(links: list[NavLink], path: str) -> list[NavLink]:
    exact = next((link for link in links if link.url.split("?")[0] == path), None)
    if exact is not None:
        return [replace(link, current="page") if link is exact else link for link in links]
    # Below a section: the link with the longest matching prefix is the current one.
    below = [
        (len(prefix), link) for link in links for prefix in link.section if path.startswith(prefix)
    ]
    if not below:
        return links
    _, section = max(below, key=lambda pair: pair[0])
    return [replace(link, current="true") if link is section else link for link in links]
