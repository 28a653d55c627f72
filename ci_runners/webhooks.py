"""The GitHub webhook endpoint (`/hooks/github/`): it reads the raw body within its own size
limit (`GITHUB_WEBHOOK_MAX_BYTES`, never Django's DATA_UPLOAD_MAX_MEMORY_SIZE: `request.body`
is never touched) and hands it to `services.webhooks`, which checks, logs and acts."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ci_runners.models import WebhookDelivery
from ci_runners.services.webhooks import (
    GitHubDelivery,
    github_delivery_receive,
    github_delivery_refuse,
)


@csrf_exempt  # authenticated by the HMAC signature, not by a session
@require_POST
def github_hook(request: HttpRequest) -> JsonResponse:
    limit: int = settings.GITHUB_WEBHOOK_MAX_BYTES
    body = _body_within(request, limit=limit)
    delivery = GitHubDelivery(
        body=body or b"",
        content_type=request.META.get("CONTENT_TYPE", ""),
        event=request.headers.get("X-GitHub-Event", ""),
        delivery_id=request.headers.get("X-GitHub-Delivery", ""),
        signature=request.headers.get("X-Hub-Signature-256", ""),
    )
    if body is None:
        reply = github_delivery_refuse(
            delivery=delivery,
            status=413,
            outcome=WebhookDelivery.Outcome.TOO_LARGE,
            detail=f"The body is larger than {limit} bytes.",
        )
    else:
        reply = github_delivery_receive(delivery=delivery)
    return JsonResponse({"outcome": reply.outcome, "detail": reply.detail}, status=reply.status)


def _body_within(request: HttpRequest, *, limit: int) -> bytes | None:
    """The raw body, or None when it is over `limit` (by its Content-Length, unread, or by
    reading at most one byte past the limit)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body
