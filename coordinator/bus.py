"""The bus between nodes. It carries hints (``{"seq": N}``) and telemetry, never the truth: a
node that hears of a new seq reads the events from the log, and polls anyway, so a lost
message only delays.

``make_bus(None)`` or ``memory://`` gives the in-process bus of the embedded mode;
``redis://...`` the Redis Streams bus of production (one stream, ``<prefix>:bus``).
"""

import asyncio
import json
import logging
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)


class Bus(Protocol):
    async def publish(self, message: dict[str, Any]) -> None: ...
    def subscribe(self) -> "Subscription": ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class Subscription:
    """A bounded queue of messages. When it overflows the oldest hint is dropped and ``lagged``
    is set: harmless for hints, because the follower re-reads the log after its last seq."""

    def __init__(self, on_close: Callable[["Subscription"], None], size: int = 1000):
        self._on_close = on_close
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
        self._on_close(self)


class MemoryBus:
    def __init__(self) -> None:
        self.subscribers: set[Subscription] = set()

    async def publish(self, message: dict[str, Any]) -> None:
        for subscription in list(self.subscribers):
            subscription.put(message)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self.subscribers.discard)
        self.subscribers.add(subscription)
        return subscription

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self.subscribers.clear()


class RedisBus:
    """Redis Streams. ``publish`` is one XADD (the stream trimmed to about ``maxlen`` entries: a node
    that reads later than that reads the log instead); each subscription reads with a blocking XREAD
    on its own connection. While Redis is down, ``publish`` raises (the node carries on) and readers
    retry; once back, each reader hands its node ``{"reconnected": True}`` so it reads the log at once."""

    BLOCK_MS = 1000

    def __init__(self, url: str, prefix: str, maxlen: int = 10_000):
        import redis.asyncio as redis  # production only: the embedded mode needs no Redis client

        self._redis, self.url, self.key, self.maxlen = redis, url, f"{prefix}:bus", maxlen
        self.client = redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self.readers: dict[Subscription, asyncio.Task] = {}

    async def publish(self, message: dict[str, Any]) -> None:
        await self.client.xadd(self.key, {"m": json.dumps(message, separators=(",", ":"))},
                               maxlen=self.maxlen, approximate=True)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self._unsubscribe)
        self.readers[subscription] = asyncio.create_task(self._read(subscription), name="commandpost-bus-reader")
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        reader = self.readers.pop(subscription, None)
        if reader is not None:
            reader.cancel()

    async def _read(self, subscription: Subscription) -> None:
        # socket_timeout above the block time: an XREAD that waits its full second is not an error.
        client = self._redis.from_url(self.url, socket_connect_timeout=1.0, socket_timeout=self.BLOCK_MS / 1000 + 2)
        last, down, pause = "$", False, 0.05
        try:
            while True:
                try:
                    if down:
                        await client.ping()
                        log.warning("bus reachable again")
                        down, pause = False, 0.05
                        subscription.put({"reconnected": True})  # read the log now for what went unheard
                    reply = await client.xread({self.key: last}, block=self.BLOCK_MS, count=500)
                except (self._redis.RedisError, OSError) as err:
                    if not down:
                        log.warning("bus unreachable (%s); following the log by polling until it is back", err)
                    # After a restart the old ids mean nothing: read what comes next, and the log for the rest.
                    down, last, pause = True, "$", min(pause * 2, 1.0)
                    await asyncio.sleep(pause)
                    continue
                for _stream, entries in reply or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        try:
                            message = json.loads(fields[b"m"])
                        except (KeyError, ValueError):
                            message = None
                        if isinstance(message, dict):
                            subscription.put(message)
                        else:
                            log.warning("ignored a malformed bus message %r", entry_id)
        finally:
            await client.aclose()

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(1.0):
                return bool(await self.client.ping())
        except (self._redis.RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        readers = list(self.readers.values())
        self.readers.clear()
        for reader in readers:
            reader.cancel()
        for reader in readers:
            try:
                await reader
            except asyncio.CancelledError:
                pass
        await self.client.aclose()


def make_bus(url: str | None, prefix: str = "commandpost") -> Bus:
    if url is None or url.startswith("memory://"):
        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, prefix)
    raise ValueError(f"unsupported bus URL {url!r}: use redis://host:port/db, or leave CP_REDIS_URL unset "
                     f"for the in-process bus")
