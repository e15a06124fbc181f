"""Former path of ``mqant.redis.registry``, kept for settings that name
``mqant.redis_registry.RedisNodeRegistry`` (as mqant.conf's REGISTRY did)."""

from mqant.redis.registry import RedisNodeRegistry as RedisNodeRegistry
