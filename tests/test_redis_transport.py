"""The web side's broker transport (config/redis_transport.py): kombu's Redis transport with
one Redis client per channel and pool, instead of one per command."""

from celery import current_app

from config.redis_transport import Transport


def test_the_web_side_celery_app_uses_the_transport(broker):
    with current_app.connection_for_write(broker.url) as connection:
        assert isinstance(connection.transport, Transport)


def test_a_channel_keeps_one_client_per_pool_and_still_publishes_and_consumes(broker):
    with current_app.connection_for_write(broker.url) as connection:
        channel = connection.channel()
        try:
            with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
                assert first is second
            given = object()
            with channel.conn_or_acquire(given) as passed:
                assert passed is given
            channel._pool = None  # as kombu does after a connection error: a new pool
            with channel.conn_or_acquire() as third:
                assert third is not first
                assert third.connection_pool is channel.pool
            channel.queue_declare("transport-check")
            channel._put("transport-check", {"body": "hello"})
            assert channel._get("transport-check") == {"body": "hello"}
        finally:
            channel.close()
