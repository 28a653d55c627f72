"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu's Redis channel builds a new `redis.Redis` client for every synchronous command it
sends (`Channel.conn_or_acquire`: each publish, each delivered message's bookkeeping, each
acknowledgement), and redis-py builds a case-insensitive copy of its ~170 response callbacks
in every client's constructor. Measured here (redis-py 8.1, kombu 5.7): a consumer spent
about 40 % of its time constructing clients and took about 1,100 messages a second, which
capped the results worker below its recording rate. The client only wraps the channel's
connection pool, so one client per pool does the same work: a pool that kombu replaces
(after a connection error) gets a new client.

The web side's Celery app uses it (`CELERY_BROKER_TRANSPORT`); URLs stay `redis://`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        if self._sync_client is None or self._sync_client.connection_pool is not pool:
            self._sync_client = self._create_client()
        yield self._sync_client


class Transport(kombu_redis.Transport):
    Channel = Channel
