"""The bus between nodes. It carries hints (``{"seq": N}``), never the truth: a node that
hears of a new seq reads the events from the log, and polls anyway, so a lost message
only delays.

``make_bus(None)`` or ``memory://`` gives the in-process bus of the embedded mode.
"""

import asyncio
import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Bus(Protocol):
    async def publish(self, message: dict[str, Any]) -> None: ...
    def subscribe(self) -> "Subscription": ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class Subscription:
    """A bounded queue of messages. When it overflows the oldest hint is dropped and ``lagged``
    is set: harmless for hints, because the follower re-reads the log after its last seq."""

    def __init__(self, bus: "MemoryBus", size: int = 1000):
        self._bus = bus
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self.lagged = False

    def put(self, message: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.lagged = True
        self.queue.put_nowait(message)

    async def get(self, timeout: float) -> dict[str, Any] | None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as a message
        # arrives, and the node's stop() then waits a whole poll interval.
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    def close(self) -> None:
        self._bus.subscribers.discard(self)


class MemoryBus:
    def __init__(self) -> None:
        self.subscribers: set[Subscription] = set()

    async def publish(self, message: dict[str, Any]) -> None:
        for subscription in list(self.subscribers):
            subscription.put(message)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        self.subscribers.add(subscription)
        return subscription

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self.subscribers.clear()


def make_bus(url: str | None) -> Bus:
    if url is None or url.startswith("memory://"):
        return MemoryBus()
    raise ValueError(f"unsupported bus URL {url!r}: this build has the in-process bus (memory://) only")
