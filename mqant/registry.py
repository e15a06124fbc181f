"""Which module classes exist, and which nodes (module instances) are live.

Module classes are registered by their apps' ``AppConfig.ready()``, like Channels finds its
layers in settings: the framework never imports a module app.
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from mqant.errors import ServiceNotFound
from mqant.module import Module
from mqant.server import ModuleServer

M = TypeVar("M", bound=type[Module])

_classes: dict[str, type[Module]] = {}


def register_module(cls: M) -> M:
    """Class decorator: make a Module subclass available to the app under its module_type."""
    module_type = cls.module_type
    if not module_type or "/" in module_type or "@" in module_type:
        raise ValueError(f"{cls.__qualname__}.module_type must be a name without '/' or '@'")
    known = _classes.get(module_type)
    if known is not None and known is not cls:
        raise ValueError(
            f"Module type {module_type!r} is registered twice: "
            f"{known.__module__}.{known.__qualname__} and {cls.__module__}.{cls.__qualname__}"
        )
    _classes[module_type] = cls
    return cls


def module_classes() -> dict[str, type[Module]]:
    return dict(_classes)


@dataclass(frozen=True, slots=True)
class Node:
    """A live module instance: ``node_id`` is ``Type@<16 hex>``; ``channel`` receives its calls.

    ``server`` is set when the node lives in this process.
    """

    node_id: str
    module_type: str
    channel: str
    events: frozenset[str] = frozenset()
    server: ModuleServer | None = field(default=None, compare=False)


Selector = Callable[[str, Sequence[Node]], Node]


def random_selector(module_type: str, nodes: Sequence[Node]) -> Node:
    """mqant's default: any live node of the type."""
    return random.choice(nodes)  # noqa: S311 - load spreading, not cryptography


class NodeRegistry:
    """The live nodes this process knows of."""

    def __init__(self, selector: Selector = random_selector) -> None:
        self.selector = selector
        self._by_id: dict[str, Node] = {}
        self._by_type: dict[str, list[Node]] = {}

    def add(self, node: Node) -> None:
        self._by_id[node.node_id] = node
        self._by_type.setdefault(node.module_type, []).append(node)

    def remove(self, node_id: str) -> None:
        node = self._by_id.pop(node_id, None)
        if node is not None:
            self._by_type[node.module_type].remove(node)

    def nodes(self) -> list[Node]:
        return list(self._by_id.values())

    def listening(self, event: str) -> list[Node]:
        return [node for node in self._by_id.values() if event in node.events]

    def select(self, target: str) -> Node:
        """The node for ``Type`` (picked by the selector) or ``Type@id`` (that node exactly).

        Raises ServiceNotFound when there is none.
        """
        module_type, at, _ = target.partition("@")
        if at:
            node = self._by_id.get(target)
            if node is None:
                raise ServiceNotFound.for_type(target)
            return node
        nodes = self._by_type.get(module_type)
        if not nodes:
            raise ServiceNotFound.for_type(module_type)
        if len(nodes) == 1:
            return nodes[0]
        return self.selector(module_type, nodes)
