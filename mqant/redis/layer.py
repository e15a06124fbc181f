"""channels-redis's pub/sub channel layer over leaner connections.

The wire is the same: PUBLISH and SUBSCRIBE on the same channel names, messages packed by
channels-redis's serializer, so processes running this layer and channels-redis's
``RedisPubSubChannelLayer`` talk to each other. The channel layer's logic (channel names,
groups, the clean-up when a receive is cancelled) is channels-redis's own: only the
connection it keeps per Redis server is replaced, because that is where the CPU went
(``bench/rpc.py``, py-spy). channels-redis sends each message through redis-py under a lock
held for the whole round trip, so a process publishes one message at a time; each send checks
a pooled connection out and back (an ``os.getpid()`` each way), runs in a retry wrapper and
waits for Redis's reply; each message received is one ``get_message(timeout=0.1)``, with its
own parser calls and timeout scope.

Here, per Redis server and event loop, two connections:

- one publishes. The PUBLISHes of one turn of the event loop leave in one write, and the
  connection runs with ``CLIENT REPLY OFF``: Redis sends nothing back. So ``send`` returns
  once the message is handed to the connection, without a round trip; what Redis would have
  answered (the number of subscribers) said nothing of delivery either, and was ignored.
  When Redis reads slower than we write, ``send`` waits for the connection's buffer to drain.
- one subscribes, and is subscribed again to every channel and group after Redis restarts.
  Each read is parsed at once and every message in it goes to its channel's queue, or to
  the channel's listener (``listen``, an extension mqant's RPC uses).

Supported hosts: ``redis://``, ``rediss://`` and ``unix://`` addresses (user and password,
``ssl_cert_reqs``, ``ssl_ca_certs``), or ``host``/``port``, with channels-redis's socket
options; for anything else (sentinels) use ``channels_redis.pubsub.RedisPubSubChannelLayer``.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from mqant import dependencies
from mqant.redis import channels_redis_adapter as adapter
from mqant.redis.connection import Publisher, Subscriber, connect
from mqant.redis.endpoint import Endpoint

logger = logging.getLogger(__name__)

# Seconds between attempts to subscribe again after the connection to Redis was lost.
RESUBSCRIBE_DELAY = 0.5


class Shard:
    """One Redis server of the layer (adapter.ShardConnection), over a Publisher and a
    Subscriber."""

    def __init__(self, host: Mapping[str, Any], layer: "LoopLayer") -> None:
        self.endpoint = Endpoint.from_host(host)
        self.layer = layer
        self._publisher: Publisher | None = None
        self._subscriber: Subscriber | None = None
        self._publisher_lock = asyncio.Lock()
        self._subscriber_lock = asyncio.Lock()
        # channel -> its SUBSCRIBE, done once Redis has confirmed it
        self._subscribed: dict[str, asyncio.Task[None]] = {}
        self._watch: asyncio.Task[None] | None = None

    def publish_nowait(self, channel: str, message: bytes) -> bool:
        """Publish if that needs no waiting (the connection is up and keeps up); else return
        False, and ``publish`` it."""
        publisher = self._publisher
        if publisher is None or not publisher.writable:
            return False
        publisher.publish(channel.encode(), message)
        return True

    async def publish(self, channel: str, message: bytes) -> None:
        """Publish, connecting first or waiting for the write buffer to drain if need be."""
        if self.publish_nowait(channel, message):
            return
        publisher = self._publisher
        if publisher is None or publisher.lost:
            publisher = await self._connect_publisher()
        await publisher.drained()
        publisher.publish(channel.encode(), message)

    async def subscribe(self, channel: str) -> None:
        """Return once Redis has confirmed the subscription (callers subscribing to the same
        channel at once share one SUBSCRIBE)."""
        subscribing = self._subscribed.get(channel)
        if subscribing is None:
            subscribing = asyncio.create_task(self._subscribe(channel))
            self._subscribed[channel] = subscribing
        await asyncio.shield(subscribing)

    async def unsubscribe(self, channel: str) -> None:
        subscribing = self._subscribed.pop(channel, None)
        if subscribing is None:
            return
        subscribing.cancel()  # if its SUBSCRIBE is still on its way, the UNSUBSCRIBE follows it
        if self._subscriber is not None:
            self._subscriber.unsubscribe(channel.encode())

    async def flush(self) -> None:
        """Close both connections and forget every subscription."""
        tasks = list(self._subscribed.values())
        if self._watch is not None:
            tasks.append(self._watch)
        self._subscribed, self._watch = {}, None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in (self._publisher, self._subscriber):
            if connection is not None:
                connection.close()
        self._publisher = self._subscriber = None

    async def _subscribe(self, channel: str) -> None:
        try:
            subscriber = await self._connect_subscriber()
            await subscriber.subscribe([channel.encode()])
        except BaseException:
            if self._subscribed.get(channel) is asyncio.current_task():  # not a newer one
                del self._subscribed[channel]
            raise

    async def _connect_publisher(self) -> Publisher:
        async with self._publisher_lock:
            if self._publisher is None or self._publisher.lost:
                self._publisher = await connect(self.endpoint, Publisher)
            return self._publisher

    async def _connect_subscriber(self) -> Subscriber:
        """The subscriber's connection; a new one (the first, or after one was lost) is
        subscribed to every channel and group subscribed before."""
        async with self._subscriber_lock:
            subscriber = self._subscriber
            if subscriber is None or subscriber.lost:
                subscriber = await connect(self.endpoint, self._new_subscriber)
                self._subscriber = subscriber
                if self._watch is None or self._watch.done():
                    self._watch = asyncio.create_task(self._keep_subscribed())
                known = [name for name, task in self._subscribed.items() if task.done()]
                if known:
                    await subscriber.subscribe([name.encode() for name in known])
            return subscriber

    def _new_subscriber(self) -> Subscriber:
        return Subscriber(self._deliver)

    def _deliver(self, name: bytes, data: bytes) -> None:
        """A message from Redis, to its channel or to each member of its group."""
        channel = name.decode()
        queue = self.layer.queue(channel)
        if queue is not None:
            self._hand(channel, queue, data)
            return
        for member in self.layer.group_members(channel):
            queue = self.layer.queue(member)
            if queue is not None:
                self._hand(member, queue, data)

    def _hand(self, channel: str, queue: "asyncio.Queue[bytes]", data: bytes) -> None:
        """To the channel's listener if it has one (LoopLayer.listeners), else its queue."""
        listener = self.layer.listeners.get(channel)
        if listener is None:
            queue.put_nowait(data)
            return
        try:
            listener(self.layer.deserialize(data))
        except Exception:  # one bad message or listener must not stop the others
            logger.exception("the listener of %s failed", channel)

    async def _keep_subscribed(self) -> None:
        """When the subscriber's connection is lost (Redis restarting), connect again, which
        subscribes again; the messages published meanwhile are lost, as with any pub/sub
        subscriber that was away. Runs while there are subscriptions."""
        while self._subscriber is not None and self._subscribed:
            await self._subscriber.closed
            if self._subscriber is None or not self._subscribed:
                return  # flushed, or nothing left to receive: the next subscribe connects
            logger.warning("Redis at %s: subscriber connection lost", self.endpoint)
            while self._subscriber is not None and self._subscriber.lost:
                await asyncio.sleep(RESUBSCRIBE_DELAY)
                try:
                    await self._connect_subscriber()
                except Exception as err:  # one warning per outage (mqant.dependencies)
                    if dependencies.note(err) is None:
                        logger.warning(
                            "Redis at %s: subscribing again failed: %s", self.endpoint, err
                        )
            logger.warning("Redis at %s: subscribed again", self.endpoint)


Listener = Callable[[dict[str, Any]], None]


class LoopLayer(adapter.LoopLayer[Shard]):
    """channels-redis's per-event-loop layer, with a Shard per Redis server, and the
    channels that have a listener instead of a receiver."""

    def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(hosts, **kwargs)
        self.listeners: dict[str, Listener] = {}

    def make_shard(self, host: Mapping[str, Any]) -> Shard:
        return Shard(host, self)

    async def flush(self) -> None:
        self.listeners = {}
        await super().flush()


class RedisPubSubChannelLayer(adapter.ChannelLayer[LoopLayer]):
    """``channels_redis.pubsub.RedisPubSubChannelLayer``, same configuration, same wire,
    over Shards (see the module's docstring)."""

    loop_layer_class = LoopLayer

    # The methods each message goes through, defined here: channels-redis reaches every one
    # through __getattr__, a functools.partial and a proxy coroutine. Both do without any
    # further coroutine when they need not wait.
    async def send(self, channel: str, message: dict[str, Any]) -> None:
        shard = self.loop_layer().shard(channel)
        data = self.serialize(message)
        if not shard.publish_nowait(channel, data):
            await shard.publish(channel, data)

    async def receive(self, channel: str) -> dict[str, Any]:
        layer = self.loop_layer()
        queue = layer.queue(channel)
        if queue is not None and not queue.empty():
            # What the layer's receive would do without suspending: no cancellation to clean
            # up after.
            ready: dict[str, Any] = self.deserialize(queue.get_nowait())
            return ready
        message: dict[str, Any] = await layer.receive(channel)
        return message

    async def new_channel(self, prefix: str = "specific.") -> str:
        channel: str = await self.loop_layer().new_channel(prefix)
        return channel

    # mqant's extension of the channel layer API (mqant.types.ListeningLayer).
    async def listen(self, channel: str, on_message: Listener) -> None:
        """Hand every message on ``channel``, a channel of this process, to ``on_message`` as
        soon as it is read, in order, instead of queueing it for ``receive``: for a consumer
        that only dispatches, it saves a queue and a turn of the event loop per message.
        ``on_message`` runs in the connection's read callback: it must not block."""
        layer = self.loop_layer()
        queue = layer.queue(channel)
        if queue is None:
            queue = await layer.subscribe_channel(channel)
        layer.listeners[channel] = on_message
        while not queue.empty():  # what arrived before
            on_message(self.deserialize(queue.get_nowait()))

    async def unlisten(self, channel: str) -> None:
        """Stop listening to ``channel`` and unsubscribe from it (as a receive cancelled
        does)."""
        layer = self.loop_layer()
        layer.listeners.pop(channel, None)
        if layer.forget_channel(channel):
            await layer.shard(channel).unsubscribe(channel)
