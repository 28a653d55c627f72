"""The Content-Security-Policy of every HTML page: scripts and styles only from our own files, no
plugins, no framing, forms posting only to us (`settings.CONTENT_SECURITY_POLICY`).

A response that already carries a policy keeps it: the badge SVGs send their own, and the few
pages that need more than the strict policy (Redoc's injected styles) set theirs with
`content_security_policy(...)`, which relaxes named directives and keeps the rest. Responses
that are not HTML (the API's JSON, static files) get none.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin
from rest_framework.renderers import BrowsableAPIRenderer

HEADER = "Content-Security-Policy"
# Inline style attributes and injected <style> elements, for third-party pages built on them
# (DRF's browsable API, Redoc); scripts stay 'self' everywhere.
INLINE_STYLES = "'self' 'unsafe-inline'"


def content_security_policy(**relaxed: str) -> str:
    """The site's policy as a header value; `style_src="..."` replaces `style-src`, and a
    directive the site does not set (e.g. `worker_src`) is added."""
    directives = dict(settings.CONTENT_SECURITY_POLICY)
    directives.update({name.replace("_", "-"): value for name, value in relaxed.items()})
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds the policy to every HTML response that has none."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if HEADER in response or not response.get("Content-Type", "").startswith("text/html"):
            return response
        if isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer):
            # DRF's browsable API lays itself out with inline style attributes.
            response[HEADER] = content_security_policy(style_src=INLINE_STYLES)
        else:
            response[HEADER] = content_security_policy()
        return response
