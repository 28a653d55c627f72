"""The site's URLs plus views that fail on purpose (403, 404, 500), for the error page and
request log tests: `@pytest.mark.urls("tests.failing_urls")`."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import path

from config.urls import urlpatterns as site_urlpatterns


def forbidden(request):
    raise PermissionDenied("Only the TAC may open this.")


def not_found(request):
    raise Http404("No such thing.")


def broken(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [
    path("failing/forbidden/", forbidden),
    path("failing/not-found/", not_found),
    path("failing/broken/", broken),
    *site_urlpatterns,
]
