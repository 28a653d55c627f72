"""Template helpers of the registry pages, and the link filters every page uses for URLs that
users (or imported data) supplied: `safe_url` and `external_link`."""

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString

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
