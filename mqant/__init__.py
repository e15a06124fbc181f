"""mqant's model on Django Channels: modules with ``HD_`` handlers, RPC between them, and the
Session a handler receives.

The public API is re-exported here; modules import from ``mqant`` only.
"""

from mqant.db import db
from mqant.errors import (
    DeadlineExceeded,
    FunctionNotFound,
    HandlerError,
    RemoteError,
    RPCError,
    ServiceNotFound,
    ServiceUnavailable,
)
from mqant.handlers import handler
from mqant.messages import NonEmpty
from mqant.module import Module
from mqant.owners import NO_CONNECTION
from mqant.registry import register_module
from mqant.rpc import call, call_nr, nodes
from mqant.session import Session

__all__ = [
    "NO_CONNECTION",
    "DeadlineExceeded",
    "FunctionNotFound",
    "HandlerError",
    "Module",
    "NonEmpty",
    "RPCError",
    "RemoteError",
    "ServiceNotFound",
    "ServiceUnavailable",
    "Session",
    "call",
    "call_nr",
    "db",
    "handler",
    "nodes",
    "register_module",
]
