"""A node: one live instance of a module, as callers and the registry see it."""

from dataclasses import dataclass, field
from typing import Any, Protocol


class LocalServer(Protocol):
    """What a caller in the same process uses of a node's server (mqant.server)."""

    accepting: bool  # False once the process drains: only the calls in flight reach it

    async def invoke(self, fn: str, args: tuple[Any, ...]) -> Any:
        """Run handler ``fn`` with ``args`` and return its result."""
        ...


@dataclass(frozen=True, slots=True)
class Node:
    """A live module instance: ``node_id`` is ``Type@<16 hex>``; ``channel`` receives its calls.

    ``server`` is set when the node lives in this process; ``process_id`` names the process
    that runs it.
    """

    node_id: str
    module_type: str
    channel: str
    events: frozenset[str] = frozenset()
    server: LocalServer | None = field(default=None, compare=False)
    process_id: str = ""
