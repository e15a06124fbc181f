"""Errors an RPC caller can tell apart. Their text is mqant's, since clients match on it."""


class RPCError(Exception):
    """A call did not produce a result; ``str(err)`` is the text a client receives."""

    kind = "error"


class ServiceNotFound(RPCError):
    """No live node hosts the requested module type (or the named node is gone)."""

    kind = "service_not_found"

    @classmethod
    def for_type(cls, module_type: str) -> "ServiceNotFound":
        return cls(f"Service(type:{module_type}) not found")


class FunctionNotFound(RPCError):
    """The module has no handler registered under that name."""

    kind = "function_not_found"

    @classmethod
    def for_name(cls, fn: str) -> "FunctionNotFound":
        return cls(f"Remote function({fn}) not found")


class DeadlineExceeded(RPCError):
    """No reply came before the caller's deadline."""

    kind = "deadline_exceeded"

    def __init__(self, message: str = "deadline exceeded") -> None:
        super().__init__(message)


class ServiceUnavailable(RPCError):
    """A dependency the call needs (Redis, the database) or the node it went to is known to
    be down: answered at once instead of at the deadline. Not one of mqant's texts: mqant
    waits for its deadline."""

    kind = "service_unavailable"

    @classmethod
    def for_dependency(cls, name: str) -> "ServiceUnavailable":
        return cls(f"{name} unavailable")

    @classmethod
    def for_node(cls, node_id: str) -> "ServiceUnavailable":
        return cls(f"{node_id} stopped")


class RemoteError(RPCError):
    """The handler failed; the text is the handler's own error (or "internal error")."""

    kind = "remote"


class HandlerError(Exception):
    """Raised by a handler to answer with an error text, mqant's ``(nil, "No room")``."""


ERROR_KINDS: dict[str, type[RPCError]] = {
    cls.kind: cls
    for cls in (RPCError, ServiceNotFound, FunctionNotFound, DeadlineExceeded, ServiceUnavailable)
} | {RemoteError.kind: RemoteError}


def error_from_wire(kind: str, text: str) -> RPCError:
    """Rebuild the exception a remote node reported as ``(kind, text)``."""
    return ERROR_KINDS.get(kind, RemoteError)(text)
