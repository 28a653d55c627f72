"""Template helpers of the registry pages."""

from django import template
from django.conf import settings
from django.urls import reverse

register = template.Library()


@register.simple_tag
def project_fragment_urls(project) -> list[str]:
    """URLs of the fragments other apps render for a project page (wired in settings).

    The registry imports no upper app; config lists which fragments the page pulls in with htmx.
    """
    return [
        reverse(name, kwargs={"slug": project.slug}) for name in settings.PROJECT_PAGE_FRAGMENTS
    ]
