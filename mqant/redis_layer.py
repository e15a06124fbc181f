"""Former path of ``mqant.redis.layer``, kept for settings that name
``mqant.redis_layer.RedisPubSubChannelLayer`` (as the README did)."""

from mqant.redis.layer import RedisPubSubChannelLayer as RedisPubSubChannelLayer
