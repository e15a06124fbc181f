"""The Redis transport: what carries a deployment of several processes over Redis.

- ``layer``: the pub/sub channel layer (channels-redis's, over leaner connections), named in
  ``CHANNEL_LAYERS``;
- ``registry``: the node registry shared through Redis, named in ``MQANT["REGISTRY"]``;
- ``connection`` and ``resp``: the asyncio connections and the RESP2 codec the layer uses;

The rest of the framework never imports this package: settings name its classes.
"""
