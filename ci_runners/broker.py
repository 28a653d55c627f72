"""The one module of the web side that talks to the Celery broker (Redis) directly.

Work for runner hosts is sent by task NAME, so the web side never imports the agent's code.
Besides messages, the broker Redis holds one small key per dispatched cell, the only thing an
agent (which has no database) can read: which attempt of the cell is wanted, or `cancelled`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from kombu import pools

logger = logging.getLogger(__name__)

RUN_CELL_TASK = "ci_runners.agent.run_cell"
# Must match the agent's `CELL_KEY`: a cell id is reused after a database reset, the token not.
CELL_KEY = "ecoreg:compat:cell:{cell_id}:{token}"
CELL_KEY_TTL_S = 3 * 24 * 3600
CANCELLED = "cancelled"
# Slack above the agent's own limit (checkout + environment build + the tests' wall time).
AGENT_SETUP_ALLOWANCE_S = 2400
PUBLISH_BATCH = 500


@dataclass(frozen=True, kw_only=True)
class CellMessage:
    cell_id: int
    token: str
    attempt: int
    task_id: str
    queue: str
    job: dict[str, Any]
    timeout_s: float


def broker_url() -> str:
    return settings.CELERY_BROKER_URL


_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis:
    """One client (and connection pool) per broker URL, kept for the process."""
    url = broker_url()
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    return _clients[url]


@contextlib.contextmanager
def _producer() -> Iterator[Any]:
    app = current_app
    connection = app.connection_for_write(broker_url())
    # kombu's global pools keep one connection per broker URL across calls.
    with pools.producers[connection].acquire(block=True, timeout=30) as producer:
        yield producer
    connection.release()


def send_by_name(*, name: str, kwargs: dict[str, Any], queue: str) -> None:
    """Send a task by name (e.g. a run's on-complete task) to a queue."""
    with _producer() as producer:
        current_app.send_task(name, kwargs=kwargs, queue=queue, producer=producer)


def publish_cells(messages: Iterable[CellMessage]) -> int:
    """Set each cell's wanted-attempt key and publish its job, pipelined in batches.

    The messages are Celery's own task messages (protocol 2, built by `app.amqp`) in the
    envelope kombu's Redis transport uses, pushed with one Redis round trip per batch: about
    a hundred times faster than one `send_task` per cell for a nightly matrix.
    """
    app = current_app
    client = redis_client()
    sent = 0
    batch: list[CellMessage] = []

    def flush() -> None:
        nonlocal sent
        pipe = client.pipeline(transaction=False)
        for message in batch:
            pipe.set(
                CELL_KEY.format(cell_id=message.cell_id, token=message.token),
                str(message.attempt),
                ex=CELL_KEY_TTL_S,
            )
            pipe.lpush(message.queue, _envelope(app, message))
        pipe.execute()
        sent += len(batch)
        batch.clear()

    for message in messages:
        batch.append(message)
        if len(batch) >= PUBLISH_BATCH:
            flush()
    if batch:
        flush()
    return sent


def _envelope(app: Any, message: CellMessage) -> str:
    soft = message.timeout_s + AGENT_SETUP_ALLOWANCE_S
    task = app.amqp.as_task_v2(
        message.task_id,
        RUN_CELL_TASK,
        args=(),
        kwargs={"job": message.job},
        soft_time_limit=soft,
        time_limit=soft + 300,
        kwargsrepr=f"{{'cell_id': {message.cell_id}, 'attempt': {message.attempt}}}",
    )
    body = base64.b64encode(json.dumps(task.body).encode()).decode()
    return json.dumps(
        {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": task.headers,
            "properties": {
                **task.properties,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": message.queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


def cancel_cells(*, cells: list[tuple[int, str]], task_ids: list[str]) -> None:
    """Tell agents the cells (`(cell_id, token)` pairs) are no longer wanted; revoke messages."""
    if not cells:
        return
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    for cell_id, token in cells:
        pipe.set(CELL_KEY.format(cell_id=cell_id, token=token), CANCELLED, ex=CELL_KEY_TTL_S)
    pipe.execute()
    task_ids = [task_id for task_id in task_ids if task_id]
    if task_ids:
        app = current_app
        with app.connection_for_write(broker_url()) as connection:
            # Workers that are up drop a revoked message; those started later read the key.
            app.control.revoke(task_ids, connection=connection)


def queue_lengths(*, names: Iterable[str] = ()) -> dict[str, int]:
    """Messages waiting in the given queues, plus every `runner.*`, `default` and `results`."""
    try:
        client = redis_client()
        found = {key.decode() for key in client.scan_iter(match="runner.*", count=500)}
        wanted = sorted(set(names) | found | {"default", "results"})
        pipe = client.pipeline(transaction=False)
        for name in wanted:
            pipe.llen(name)
        return dict(zip(wanted, pipe.execute(), strict=True))
    except redis.RedisError as exc:
        logger.warning("queue lengths unavailable: %s", exc)
        return {}
