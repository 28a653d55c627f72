"""The one module of the web side that talks to the Celery broker (Redis) directly.

Work for runner hosts is sent by task NAME; the only agent module the web side imports is the
wire, `ci_runners.agent.contracts`. Besides messages, the broker Redis holds small keys per
dispatched cell: one the web side writes and an agent (which has no database) reads, which
attempt of the cell is wanted, or `cancelled`; and one per attempt the agent writes and the
reaper reads (`cell_claims`), the runner's claim: its liveness, or that its result is sent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from kombu import pools

from ci_runners.agent import contracts

logger = logging.getLogger(__name__)

PUBLISH_BATCH = 500


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A runner's claim on one attempt of a cell (`contracts.claim_key`)."""

    holder: str  # the runner's name while it runs the attempt, else `contracts.CLAIM_DONE`
    done_for_s: int | None = None  # since the result was sent (a done claim only)

    @property
    def done(self) -> bool:
        return self.holder == contracts.CLAIM_DONE


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
    """A producer from kombu's pool: one broker connection per URL, kept across calls."""
    connection = current_app.connection_for_write(broker_url())
    try:
        with pools.producers[connection].acquire(block=True, timeout=30) as producer:
            yield producer
    finally:
        connection.release()


def send_by_name(
    *, name: str, kwargs: dict[str, Any], queue: str, countdown: float | None = None
) -> None:
    """Send a task by name (e.g. a run's on-complete task) to a queue, due at once or in
    `countdown` seconds."""
    with _producer() as producer:
        current_app.send_task(
            name, kwargs=kwargs, queue=queue, producer=producer, countdown=countdown
        )


def _kwargsrepr(message: CellMessage) -> str:
    return f"{{'cell_id': {message.cell_id}, 'attempt': {message.attempt}}}"


def publish_cells(messages: Iterable[CellMessage]) -> int:
    """Set each cell's wanted-attempt key, then send its job by task name to its queue.

    The keys go in pipelined batches (one Redis round trip per batch) before the batch's
    messages, so an agent that takes a message always finds its key. The messages go through
    Celery's `send_task` on one pooled producer, routed explicitly to the cell's queue, a
    batch of them in one pipeline (kombu's producer batch).
    """
    app = current_app
    client = redis_client()
    sent = 0
    batch: list[CellMessage] = []
    with _producer() as producer:

        def flush() -> None:
            nonlocal sent
            pipe = client.pipeline(transaction=False)
            for message in batch:
                pipe.set(
                    contracts.cell_key(cell_id=message.cell_id, token=message.token),
                    str(message.attempt),
                    ex=contracts.CELL_KEY_TTL_S,
                )
            pipe.execute()
            with producer.batch(max_size=PUBLISH_BATCH):  # one pipeline (kombu's, on Redis)
                for message in batch:
                    soft, hard = contracts.cell_time_limits(message.timeout_s)
                    app.send_task(
                        contracts.RUN_CELL_TASK,
                        kwargs={"job": message.job},
                        task_id=message.task_id,
                        queue=message.queue,
                        routing_key=message.queue,
                        soft_time_limit=soft,
                        time_limit=hard,
                        kwargsrepr=_kwargsrepr(message),
                        producer=producer,
                    )
            sent += len(batch)
            batch.clear()

        for message in messages:
            batch.append(message)
            if len(batch) >= PUBLISH_BATCH:
                flush()
        if batch:
            flush()
    return sent


def cancel_cells(*, cells: list[tuple[int, str]], task_ids: list[str]) -> None:
    """Tell agents the cells (`(cell_id, token)` pairs) are no longer wanted; revoke messages."""
    if not cells:
        return
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    for cell_id, token in cells:
        pipe.set(
            contracts.cell_key(cell_id=cell_id, token=token),
            contracts.CANCELLED,
            ex=contracts.CELL_KEY_TTL_S,
        )
    pipe.execute()
    task_ids = [task_id for task_id in task_ids if task_id]
    if task_ids:
        app = current_app
        with app.connection_for_write(broker_url()) as connection:
            # Workers that are up drop a revoked message; those started later read the key.
            app.control.revoke(task_ids, connection=connection)


def cell_claims(*, attempts: Sequence[tuple[int, str, int]]) -> dict[int, Claim | None] | None:
    """The claim on each `(cell_id, token, attempt)`, by cell id (None: nobody holds it); None
    when the broker cannot be read."""
    if not attempts:
        return {}
    try:
        pipe = redis_client().pipeline(transaction=False)
        for cell_id, token, attempt in attempts:
            key = contracts.claim_key(cell_id=cell_id, token=token, attempt=attempt)
            pipe.get(key)
            pipe.ttl(key)
        replies = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("cell claims unavailable: %s", exc)
        return None
    claims: dict[int, Claim | None] = {}
    for (cell_id, _, _), value, ttl_s in zip(attempts, replies[::2], replies[1::2], strict=True):
        if value is None:
            claims[cell_id] = None
            continue
        holder = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        done_for_s = None
        if holder == contracts.CLAIM_DONE and ttl_s >= 0:
            done_for_s = contracts.claim_done_for_s(ttl_s=ttl_s)
        claims[cell_id] = Claim(holder=holder, done_for_s=done_for_s)
    return claims


def queue_lengths(*, names: Iterable[str] = ()) -> dict[str, int]:
    """Messages waiting in the given queues, plus every `runner.*` and the web side's."""
    try:
        client = redis_client()
        pattern = f"{contracts.RUNNER_QUEUE_PREFIX}*"
        found = {key.decode() for key in client.scan_iter(match=pattern, count=500)}
        wanted = sorted(
            set(names)
            | found
            | {contracts.DEFAULT_QUEUE, contracts.RESULTS_QUEUE, contracts.CELL_RESULTS_QUEUE}
        )
        pipe = client.pipeline(transaction=False)
        for name in wanted:
            pipe.llen(name)
        return dict(zip(wanted, pipe.execute(), strict=True))
    except redis.RedisError as exc:
        logger.warning("queue lengths unavailable: %s", exc)
        return {}
