"""Connections to Redis for the pub/sub channel layer (mqant.redis.layer): one that
publishes without replies, writing the messages of one turn of the event loop together, and
one that subscribes and hands each message on as soon as it is parsed. asyncio protocols
over RESP2 (mqant.redis.resp); the channel layer's logic is not here.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from mqant.redis import resp
from mqant.redis.endpoint import Endpoint

logger = logging.getLogger(__name__)


class Connection(asyncio.Protocol):
    """A connection to Redis: it writes commands and parses what Redis sends; subclasses
    decide what the values mean. ``call`` waits for the reply to one command (connection
    set-up); a value nobody waits for is dropped, an error logged."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._parser = resp.Parser()
        self._replies: deque[asyncio.Future[Any]] = deque()
        self._writable = asyncio.Event()
        self._writable.set()

    async def start(self) -> None:
        """Called once connected and authenticated."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream connection's

    def data_received(self, data: bytes) -> None:
        try:
            values = self._parser.feed(data)
        except (resp.ProtocolError, ValueError):
            logger.exception("Redis sent bytes that are not RESP2: closing the connection")
            self.close()
            return
        for value in values:
            self.received(value)

    def received(self, value: Any) -> None:
        if self._replies:
            waiter = self._replies.popleft()
            if not waiter.done():
                waiter.set_result(value)
        elif isinstance(value, resp.ReplyError):
            logger.warning("Redis answered: %s", value)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self._replies:
            waiter = self._replies.popleft()
            if not waiter.done():
                waiter.set_exception(RedisConnectionError("connection to Redis lost"))
        self._writable.set()  # writers waiting for a drain find the connection lost
        if not self.closed.done():
            self.closed.set_result(None)

    @property
    def writable(self) -> bool:
        """Whether a write goes out now: connected, and the write buffer not full."""
        return not self.lost and self._writable.is_set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def drained(self) -> None:
        """Return once the connection's write buffer is below its high-water mark."""
        await self._writable.wait()

    def write(self, data: bytes) -> None:
        if self.lost or self.transport is None:
            raise RedisConnectionError("connection to Redis lost")
        self.transport.write(data)

    async def call(self, *parts: bytes | str) -> Any:
        """Send one command and return its reply; raise ResponseError for an error reply."""
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.write(resp.command(*parts))
        self._replies.append(waiter)
        reply = await waiter
        if isinstance(reply, resp.ReplyError):
            raise ResponseError(str(reply))
        return reply

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Publisher(Connection):
    """The connection that publishes, without replies; the messages of one turn of the event
    loop are written together."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[bytes] = []

    async def start(self) -> None:
        # Without a reply, a PUBLISH costs Redis one read and us one write. Should Redis
        # refuse the command (an ACL, a managed service), its replies come and are dropped.
        self.write(resp.command("CLIENT", "REPLY", "OFF"))

    def publish(self, channel: bytes, message: bytes) -> None:
        if self.lost:
            raise RedisConnectionError("connection to Redis lost")
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(resp.publish(channel, message))

    def _flush(self) -> None:
        data, self._pending = b"".join(self._pending), []
        if not self.lost and self.transport is not None:
            self.transport.write(data)


class Subscriber(Connection):
    """The connection that subscribes: hands each message to ``deliver(channel, data)``."""

    def __init__(self, deliver: Callable[[bytes, bytes], None]) -> None:
        super().__init__()
        self._deliver = deliver
        self._confirming: dict[bytes, list[asyncio.Future[None]]] = {}

    async def subscribe(self, channels: list[bytes]) -> None:
        """Subscribe and return once Redis confirms: a message published from then on
        arrives."""
        loop = asyncio.get_running_loop()
        waiters = [loop.create_future() for _ in channels]
        for channel, waiter in zip(channels, waiters, strict=True):
            self._confirming.setdefault(channel, []).append(waiter)
        self.write(resp.command("SUBSCRIBE", *channels))
        await asyncio.gather(*waiters)

    def unsubscribe(self, channel: bytes) -> None:
        if not self.lost:
            self.write(resp.command("UNSUBSCRIBE", channel))

    def received(self, value: Any) -> None:
        if isinstance(value, list) and len(value) == 3:
            kind, channel, data = value
            if kind == b"message":
                self._deliver(channel, data)
            elif kind == b"subscribe":
                self._confirmed(channel)
            return  # unsubscribe confirmations
        if isinstance(value, resp.ReplyError):
            # In subscribed mode only a refused (UN)SUBSCRIBE is answered with an error,
            # and it does not say which channel: every subscription waiting fails.
            self._fail_confirmations(ResponseError(str(value)))
        super().received(value)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_confirmations(RedisConnectionError("connection to Redis lost"))
        super().connection_lost(exc)

    def _confirmed(self, channel: bytes) -> None:
        waiters = self._confirming.get(channel)
        if waiters:
            waiter = waiters.pop(0)
            if not waiters:
                del self._confirming[channel]
            if not waiter.done():
                waiter.set_result(None)

    def _fail_confirmations(self, error: Exception) -> None:
        confirming, self._confirming = self._confirming, {}
        for waiters in confirming.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)


C = TypeVar("C", bound=Connection)


async def connect(endpoint: Endpoint, factory: Callable[[], C]) -> C:
    """A connection to ``endpoint``, authenticated and started; raises redis's
    ConnectionError when Redis cannot be reached, ResponseError when it refuses us."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(endpoint.connect_timeout):
            if endpoint.path:
                transport, connection = await loop.create_unix_connection(factory, endpoint.path)
            else:
                transport, connection = await loop.create_connection(
                    factory, endpoint.host, endpoint.port, ssl=endpoint.ssl_context()
                )
    except (OSError, TimeoutError) as err:
        raise RedisConnectionError(f"Error connecting to Redis at {endpoint}: {err}") from err
    endpoint.configure(transport.get_extra_info("socket"))
    try:
        if endpoint.password:
            user = [endpoint.username] if endpoint.username else []
            await connection.call("AUTH", *user, endpoint.password)
        await connection.start()
    except BaseException:
        connection.close()
        raise
    return connection
