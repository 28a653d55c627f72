"""The results worker records cells' results in batches: a Celery consumer bootstep.

Runners send each result as a Celery task message (`contracts.RESULT_TASK`) to a queue of its
own, `contracts.CELL_RESULTS_QUEUE`. On the results worker (the one started with `-Q results`,
config/celery.py) this bootstep consumes that queue with kombu consumers of its own (on
RESULTS_CHANNELS channels at once): it gathers up to RESULTS_BATCH_SIZE results and hands
each batch to the worker's pool, where `cells_record_results_or_resend` records it in one
transaction. While every pool process has a batch, the next one keeps filling; a partial
batch goes when a process is free, at the latest RESULTS_BATCH_WAIT_S after the last hand-over
check. A message is acknowledged only once its batch has committed:

- a pool process killed mid-batch (or a batch that raised) leaves its messages
  unacknowledged, handed back to the queue RESULTS_RETRY_AFTER_S later;
- the whole worker killed leaves them to the broker, which gives them back after the results
  worker's visibility timeout (config/celery.py);
- recording a result twice changes nothing, so nothing is lost and nothing is doubled.

The consumer's prefetch is its own (a batch per pool process, and one gathering), so the
worker's task prefetch (progress and heartbeats, on `results`) is left as it is. Its channel
does not give unacknowledged messages back when it closes: after a broker restart kombu
cannot (its connection is gone, and it fails on the attempt), and the visibility timeout
does it anyway. A result the database could not take is sent again with a countdown
(`cells_record_results_or_resend`): such a message is held until it is due, as Celery holds
an ETA task.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections
from kombu import Consumer, Queue
from kombu.message import Message

from ci_runners.agent import contracts

logger = logging.getLogger(__name__)


def record_batch(payloads: list[dict[str, Any]]) -> int:
    """In a pool process: record a batch of results (the messages' keyword arguments)."""
    from ci_runners import services

    close_old_connections()
    try:
        messages = []
        for fields in payloads:
            try:
                messages.append(contracts.ResultMessage.from_kwargs(fields))
            except (KeyError, TypeError, ValueError) as exc:
                logger.error("unreadable result message dropped: %r", exc)
        services.cells_record_results_or_resend(messages=messages)
        return len(messages)
    finally:
        close_old_connections()


def _due(message: Message) -> float:
    """Seconds until an ETA message (a result sent again with a countdown) is due; 0 now."""
    eta = (message.headers or {}).get("eta")
    if not eta:
        return 0.0
    try:
        when = datetime.fromisoformat(str(eta))
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class ResultBatches(bootsteps.ConsumerStep):
    """Consumes `CELL_RESULTS_QUEUE` in batches on the worker that consumes `results`."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.enabled = contracts.RESULTS_QUEUE in parent.app.amqp.queues
        self.size = settings.RESULTS_BATCH_SIZE
        self.wait_s = settings.RESULTS_BATCH_WAIT_S
        self.gathered: list[tuple[Message, dict[str, Any]]] = []
        self.consumer: Any = None
        self.pool_size = 1
        self.in_flight = 0  # batches handed to the pool and not done

    def get_consumers(self, channel: Any) -> list[Consumer]:
        """One consumer per channel, RESULTS_CONSUMER_CHANNELS of them: kombu's Redis
        transport takes one message per round trip on a channel, so several channels (each
        its own connection) wait on the queue at once. Their prefetch together holds a batch
        per pool process and one gathering."""
        self.pool_size = max(1, getattr(self.consumer.pool, "num_processes", 1) or 1)
        channels = [channel] + [
            self.consumer.connection.channel() for _ in range(settings.RESULTS_CHANNELS - 1)
        ]
        prefetch = -(-self.size * (self.pool_size + 1) // len(channels))
        consumers = []
        for each in channels:
            each.do_restore = False  # see the module's docstring
            consumers.append(
                Consumer(
                    each,
                    queues=[Queue(contracts.CELL_RESULTS_QUEUE)],
                    callbacks=[self.on_message],
                    accept=["json"],
                    prefetch_count=prefetch,
                )
            )
        return consumers

    def start(self, c: Any) -> None:
        self.consumer = c
        super().start(c)
        self.flusher = c.timer.call_repeatedly(self.wait_s, self.flush)

    def stop(self, c: Any) -> None:
        self._stop_flushing()
        self.flush(everything=True)
        super().stop(c)

    def shutdown(self, c: Any) -> None:
        self._stop_flushing()
        self.flush(everything=True)
        super().shutdown(c)

    def _stop_flushing(self) -> None:
        flusher = getattr(self, "flusher", None)
        if flusher is not None:
            flusher.cancel()
            self.flusher = None

    def on_message(self, body: Any, message: Message) -> None:
        """Gather a result (held until due if it came back with a countdown)."""
        name = (message.headers or {}).get("task")
        try:
            _args, kwargs, _embed = body
        except (TypeError, ValueError):
            kwargs = None
        if name != contracts.RESULT_TASK or not isinstance(kwargs, dict):
            logger.error("not a result on %s (%r): dropped", contracts.CELL_RESULTS_QUEUE, name)
            message.ack()
            return
        due = _due(message)
        if due > 0:
            self.consumer.timer.call_after(due, self._gather, (message, kwargs))
            return
        self._gather(message, kwargs)

    def _gather(self, message: Message, kwargs: dict[str, Any]) -> None:
        self.gathered.append((message, kwargs))
        if len(self.gathered) >= self.size:
            self.flush()

    def flush(self, *, everything: bool = False) -> None:
        """Hand what was gathered (up to a batch) to the pool, unless every pool process has
        a batch already: then the batch fills until one is done (`_done`). `everything`: all
        of it, whatever the pool holds (the consumer stops)."""
        while self.gathered and (everything or self.in_flight < self.pool_size):
            self._hand_over()

    def _hand_over(self) -> None:
        batch, self.gathered = self.gathered[: self.size], self.gathered[self.size :]
        messages = [message for message, _ in batch]
        self.in_flight += 1
        self.consumer.pool.apply_async(
            record_batch,
            args=([kwargs for _, kwargs in batch],),
            callback=lambda _recorded: self._done(messages),
            error_callback=lambda exc: self._done(messages, failed=exc),
        )

    def _done(self, messages: list[Message], failed: Any = None) -> None:
        """A batch committed (acknowledge its messages) or failed; the next one goes."""
        self.in_flight = max(0, self.in_flight - 1)
        if failed is not None:
            self._give_back_later(messages, failed)
        else:
            self._acknowledge(messages)
        self.flush()

    def _acknowledge(self, messages: list[Message]) -> None:
        for message in messages:
            try:
                message.ack()
            except Exception as exc:  # noqa: BLE001 - the broker gives it back; recorded once
                logger.warning("result not acknowledged (%r): it will come back", exc)

    def _give_back_later(self, messages: list[Message], exc: Any) -> None:
        """A batch that failed in its pool process: its messages go back to the queue later
        (at once, a batch that keeps failing would take the worker's whole time)."""
        logger.error("a batch of %d results failed (%r): given back later", len(messages), exc)
        self.consumer.timer.call_after(settings.RESULTS_RETRY_AFTER_S, self._give_back, (messages,))

    def _give_back(self, messages: list[Message]) -> None:
        for message in messages:
            try:
                message.reject(requeue=True)
            except Exception as exc:  # noqa: BLE001 - the visibility timeout gives it back
                logger.warning("result not given back (%r): the broker will", exc)
