"""The web's access log: one line per request that reaches Django (method, path, status,
duration), and a logging filter that keeps tracebacks for server errors only.

It lives here rather than in uvicorn's access log (the Procfile runs uvicorn with
--no-access-log) because here the line carries the time Django took and the status Django
chose, and it is written through LOGGING like every other line of the web. The query string is
left out: it may carry search terms or tokens. Badge requests answered by the ASGI fast path
(registry/badge_asgi.py) never reach Django and are not logged.
"""

import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

logger = logging.getLogger(__name__)


class RequestLogMiddleware:
    """Outermost middleware: it times everything below it, and every error below it has
    already become a response."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        log_request(request, response, started)
        return response

    async def _acall(self, request: HttpRequest):
        started = time.perf_counter()
        response = await self.get_response(request)
        log_request(request, response, started)
        return response


def log_request(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info("%s %s %s %.1f ms", request.method, request.path, response.status_code, elapsed_ms)


class TracebackOnlyFor5xx(logging.Filter):
    """Drops the traceback of a record about a client error (a `status_code` below 500 in its
    extra, as Django's request and security loggers set it): a refused host or a bad request
    is one line, not thirty."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
