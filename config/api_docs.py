"""Swagger UI (/api/docs/) and Redoc (/api/redoc/) under the site's Content-Security-Policy.

Their scripts come from files: Swagger UI's start-up script from the split view's `?script`
URL, Redoc's from its bundle; their templates (templates/api_docs/) carry no inline script or
style and load no web font from a CDN. Redoc styles itself with injected <style> elements and
searches in a worker made from a blob, so its page alone allows those two; scripts stay 'self'.
"""

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response

from config.content_security_policy import HEADER, INLINE_STYLES, content_security_policy


class SwaggerUIView(SpectacularSwaggerSplitView):
    template_name = "api_docs/swagger_ui.html"


class RedocView(SpectacularRedocView):
    template_name = "api_docs/redoc.html"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args, **kwargs) -> Response:
        response = super().get(request, *args, **kwargs)
        response[HEADER] = content_security_policy(style_src=INLINE_STYLES, worker_src="blob:")
        return response
