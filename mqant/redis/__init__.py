"""The Redis transport: what carries a deployment of several processes over Redis.

- ``layer``: the pub/sub channel layer (channels-redis's, over leaner connections), named in
  ``CHANNEL_LAYERS``;
- ``registry``: the node registry shared through Redis, named in ``MQANT["REGISTRY"]``;
- ``connection``, ``endpoint`` and ``resp``: the asyncio connections, where they go, and
  the RESP2 codec the layer uses;
- ``channels_redis_adapter``: every use of channels-redis's internals.

The rest of the framework never imports this package: settings name its classes.
"""
