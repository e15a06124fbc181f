"""Every use of channels-redis's internals, in one place, written for channels-redis 4.3.0
(``WRITTEN_FOR``, the version requirements.txt pins; ``check_version`` warns when another
is installed, and tests/mqant/redis/test_channels_redis_adapter.py fails).

mqant.redis.layer keeps channels-redis's pub/sub layer (channel names, groups, serializer,
the clean-up when a receive is cancelled) and replaces only its connection to each Redis
server. channels-redis offers no way to do that, so this module reaches into it. The names
used, why, and the upstream change that would make each unnecessary:

- ``channels_redis.pubsub.RedisPubSubLoopLayer`` (undocumented class): the per-event-loop
  layer holding that logic; subclassed (``LoopLayer``), its channel-layer methods
  (``receive``, ``new_channel``, the groups, ``flush``) called directly. Of its members:

  - ``_shards`` (private): the connection per Redis server, replaced by ours (``make_shard``);
    the loop layer calls ``publish``, ``subscribe``, ``unsubscribe`` and ``flush`` on each,
    the undocumented methods of ``RedisSingleShardConnection`` (``ShardConnection`` here).
    Upstream: a shard (connection) class as a layer option.
  - ``_get_shard(name)`` (private): the shard a channel or group hashes to (``shard``).
    Upstream: the same option, or a public ``shard_for(name)``.
  - ``_subscribe_to_channel(channel)`` (private): gives a channel of this process its queue
    and subscribes (``subscribe_channel``), for ``listen``. Upstream: a listen/callback
    receive in the layer, or a public ``subscribe``.
  - ``channels`` and ``groups`` (undocumented): the queue of each channel of this process and
    the members of each group, which a shard reads to deliver a message, as channels-redis's
    own shard does (``queue``, ``group_members``, ``forget_channel``). Upstream: shards given
    a ``deliver(name, data)`` callback by the loop layer.
  - ``channel_layer`` (undocumented): the proxy that holds the serializer (``deserialize``).

- ``channels_redis.pubsub.RedisPubSubChannelLayer`` (public), its private ``_get_layer``
  (overridden: every event loop gets our loop layer; channels-redis's ``__getattr__`` reaches
  it for ``group_add`` and the other methods not defined here), ``_layers``, ``_args`` and
  ``_kwargs`` (read and filled as it does), and its undocumented ``serialize`` and
  ``deserialize`` (the wire's format). Upstream: a ``loop_layer_class`` attribute, and the
  serializer documented.
- ``channels_redis.utils._wrap_close`` (private): flushes a loop's layer when the loop
  closes, as channels-redis does for its own. Upstream: comes with ``loop_layer_class``.
- ``channels_redis.utils.decode_hosts`` (undocumented): reads ``hosts`` in every form
  channels-redis accepts. Upstream: made public, or shards given decoded hosts.
"""

import asyncio
import importlib.metadata
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
from channels_redis.utils import _wrap_close, decode_hosts

logger = logging.getLogger(__name__)

WRITTEN_FOR = "4.3.0"


def installed_version() -> str:
    return importlib.metadata.version("channels-redis")


def check_version() -> None:
    """Warn when the installed channels-redis is not the one this module was written for."""
    installed = installed_version()
    if installed != WRITTEN_FOR:
        logger.warning(
            "channels-redis %s is installed; mqant.redis was written for %s and uses its "
            "internals (mqant/redis/channels_redis_adapter.py): check them",
            installed,
            WRITTEN_FOR,
        )


class ShardConnection(Protocol):
    """What channels-redis's loop layer calls on the connection to one Redis server."""

    async def publish(self, channel: str, message: bytes) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def flush(self) -> None: ...


S = TypeVar("S", bound=ShardConnection)


class LoopLayer(RedisPubSubLoopLayer, Generic[S]):  # type: ignore[misc]  # untyped
    """channels-redis's per-event-loop layer over the shards ``make_shard`` makes."""

    def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(hosts, **kwargs)
        self._shards = [self.make_shard(host) for host in decode_hosts(hosts)]

    def make_shard(self, host: Mapping[str, Any]) -> S:
        """The connection to one Redis server, ``host`` a decoded entry of ``hosts``."""
        raise NotImplementedError

    def shard(self, name: str) -> S:
        """The shard a channel or group name belongs to."""
        shard: S = self._get_shard(name)
        return shard

    def queue(self, channel: str) -> "asyncio.Queue[bytes] | None":
        """The queue of a channel of this process, None for another channel."""
        queue: asyncio.Queue[bytes] | None = self.channels.get(channel)
        return queue

    def group_members(self, name: str) -> Iterable[str]:
        """The channels in the group that publishes on ``name``."""
        members: Iterable[str] = self.groups.get(name, ())
        return members

    async def subscribe_channel(self, channel: str) -> "asyncio.Queue[bytes]":
        """Give ``channel`` its queue, subscribe to it, and return the queue."""
        await self._subscribe_to_channel(channel)
        queue: asyncio.Queue[bytes] = self.channels[channel]
        return queue

    def forget_channel(self, channel: str) -> bool:
        """Drop the channel's queue; whether it had one."""
        return self.channels.pop(channel, None) is not None

    def deserialize(self, data: bytes) -> dict[str, Any]:
        message: dict[str, Any] = self.channel_layer.deserialize(data)
        return message


L = TypeVar("L", bound=LoopLayer[Any])


class ChannelLayer(RedisPubSubChannelLayer, Generic[L]):  # type: ignore[misc]  # untyped
    """channels-redis's ``RedisPubSubChannelLayer`` (same configuration, same serializer)
    whose per-event-loop layer is a ``loop_layer_class``."""

    loop_layer_class: type[L]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_version()
        super().__init__(*args, **kwargs)

    def loop_layer(self) -> L:
        """This event loop's layer, made on first use and flushed when the loop closes."""
        loop = asyncio.get_running_loop()
        layer: L | None = self._layers.get(loop)
        if layer is None:
            layer = self.loop_layer_class(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer

    def _get_layer(self) -> L:
        return self.loop_layer()

    def serialize(self, message: dict[str, Any]) -> bytes:
        data: bytes = super().serialize(message)
        return data

    def deserialize(self, data: bytes) -> dict[str, Any]:
        message: dict[str, Any] = super().deserialize(data)
        return message
