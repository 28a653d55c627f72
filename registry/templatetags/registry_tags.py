"""Template helpers of the registry pages, and the link filters every page uses for URLs that
users (or imported data) supplied: `safe_url` and `external_link`."""

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString

from registry import charts
from registry.badges import version_sort_key
from registry.web_urls import is_web_url

register = template.Library()


@register.filter
def safe_url(url: object) -> str:
    """The URL if it is http(s), else "": for an `href` built from user-supplied data."""
    return url.strip() if isinstance(url, str) and is_web_url(url) else ""


@register.filter
def external_link(url: object, text: object = None) -> SafeString:
    """`<a href="url" rel="nofollow noopener">text</a>` for an http(s) URL; any other URL
    (`javascript:`, `data:`, ...) is shown as plain, escaped text, never as a link."""
    label = url if text is None else text
    href = safe_url(url)
    if not href:
        return conditional_escape(label)
    return format_html('<a href="{}" rel="nofollow noopener">{}</a>', href, label)


@register.simple_tag
def project_fragment_urls(project) -> list[str]:
    """URLs of the fragments other apps render for a project page (wired in settings).

    The registry imports no upper app; config lists which fragments the page pulls in with htmx.
    """
    return [
        reverse(name, kwargs={"slug": project.slug}) for name in settings.PROJECT_PAGE_FRAGMENTS
    ]


@register.filter
def logo_url(project) -> str:
    """The address of the project's logo as pages show it (our card rendering of a heavy file,
    else the file itself); "" when the project has no logo."""
    sha256 = getattr(project, "logo_file_id", None)
    return reverse("registry:logo_card", kwargs={"sha256": sha256}) if sha256 else ""


# How a card shows each outcome of a project's latest cell on a PyTorch version.
COMPAT_OUTCOMES = {
    "passes": ("✓", "passes on"),
    "fails": ("✗", "fails on"),
    "not-installable": ("⊘", "cannot be installed with"),
}


@register.filter
def compat_results(project) -> list[dict]:
    """The project's latest compatibility result per PyTorch version, oldest version first:
    `[{"version": "2.14.1", "passed": False, "outcome": "fails", "symbol": "✗",
    "title": "fails on"}, ...]`. Versions whose cell errored (infrastructure) are not shown."""
    results = {str(version): "passes" for version in project.works_with or ()}
    results.update({str(v): "not-installable" for v in project.not_installable_with or ()})
    results.update({str(version): "fails" for version in project.breaks_with or ()})
    return [
        {
            "version": version,
            "passed": results[version] == "passes",
            "outcome": results[version],
            "symbol": COMPAT_OUTCOMES[results[version]][0],
            "title": COMPAT_OUTCOMES[results[version]][1],
        }
        for version in sorted(results, key=version_sort_key)
    ]


@register.filter
def compact_number(value) -> str:
    return charts.compact_number(value)


@register.simple_tag
def health_charts(history) -> list[dict]:
    """The project page's history charts, drawn from `selectors.HealthHistory`."""
    window = {"start": history.start, "end": history.end}
    points = history.points
    latest = points[-1] if points else None
    return [
        {
            "title": "Stars",
            "value": compact_number(latest.stars if latest else None),
            "svg": charts.line_chart(
                [(p.taken_at, p.stars) for p in points], title="Stars", css_class="stars", **window
            ),
        },
        {
            "title": "Commits (90 days)",
            "value": compact_number(latest.commits_90d if latest else None),
            "svg": charts.line_chart(
                [(p.taken_at, p.commits_90d) for p in points],
                title="Commits in the last 90 days",
                css_class="commits",
                **window,
            ),
        },
        {
            "title": "Active contributors (90 days)",
            "value": compact_number(latest.contributors_90d if latest else None),
            "svg": charts.line_chart(
                [(p.taken_at, p.contributors_90d) for p in points],
                title="Active contributors in the last 90 days",
                css_class="contributors",
                **window,
            ),
        },
        {
            "title": "Releases",
            "value": history.releases[-1].name if history.releases else "none seen",
            "svg": charts.release_timeline(
                [(r.name, r.published_at) for r in history.releases],
                title="Releases",
                css_class="releases",
                **window,
            ),
        },
    ]
