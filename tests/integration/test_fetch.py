"""AtomicFetcher and acknowledge on a real Redis: kombu's delivered books stay consistent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from worker.fetch import AtomicFetcher, acknowledge


@pytest.fixture
def channel(redis_server: str) -> Iterator[Any]:
    with Connection(f"{redis_server}/13") as connection:
        channel = connection.default_channel
        yield channel
        with channel.conn_or_acquire() as client:
            client.delete(channel.qos.unacked_key, channel.qos.unacked_index_key)


def _publish(channel: Any, queue: str, count: int) -> None:
    target = Queue(queue, Exchange(queue), routing_key=queue)
    producer = channel.connection.client.Producer()
    for index in range(count):
        producer.publish({"n": index}, declare=[target], routing_key=queue, serializer="json")


def _books(channel: Any) -> tuple[int, int]:
    qos = channel.qos
    with channel.conn_or_acquire() as client:
        return int(client.hlen(qos.unacked_key)), int(client.zcard(qos.unacked_index_key))


def test_fetched_messages_are_delivered_and_acknowledged_in_one_step(channel: Any) -> None:
    queue = f"test.fetch.{uuid.uuid4().hex[:8]}"
    _publish(channel, queue, 5)
    fetcher = AtomicFetcher(queue)

    first = fetcher.fetch(channel, 3)
    assert [message.decode() for message in first] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert _books(channel) == (3, 3)  # recorded as delivered by the same script

    acknowledge(first)
    assert _books(channel) == (0, 0)
    assert all(message.acknowledged for message in first)
    qos = channel.qos  # the in-process books too: kombu counts delivered minus settled
    assert len(qos._delivered) - len(qos._dirty) == 0
    acknowledge(first)  # settled messages are skipped, not acknowledged twice

    rest = fetcher.fetch(channel, 10)
    assert [message.decode()["n"] for message in rest] == [3, 4]
    rest[0].reject(requeue=True)  # kombu's own settling still works on fetched messages
    acknowledge(rest)
    assert rest[1].acknowledged
    assert _books(channel) == (0, 0)
    assert [message.decode()["n"] for message in fetcher.fetch(channel, 10)] == [3]
