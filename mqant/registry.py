"""Which module classes exist, and which nodes (module instances) are live.

Module classes are registered with ``@register_module`` in their apps' ``modules.py``, which
``mqant``'s ``AppConfig.ready()`` imports for every installed app, as the admin discovers
``admin.py``: the framework names no module app.

The registry of live nodes is named in ``MQANT["REGISTRY"]``. ``NodeRegistry`` knows the nodes
of its own process, which is all there is with the in-memory channel layer;
``mqant.redis_registry.RedisNodeRegistry`` shares them between processes through Redis.
"""

import logging
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.utils.module_loading import import_string

from mqant import conf
from mqant.errors import ServiceNotFound
from mqant.module import Module
from mqant.nodes import Node

__all__ = ["Node", "NodeRegistry", "Selector", "module_classes", "register_module"]

M = TypeVar("M", bound=type[Module])

logger = logging.getLogger(__name__)

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
    """Module type -> the class registered for it."""
    return dict(_classes)


Selector = Callable[[str, Sequence[Node]], Node]
# Told of the nodes of other processes that are gone without draining (their process died):
# the calls in flight to them will never be answered.
GoneWatcher = Callable[[list[Node]], None]


def random_selector(module_type: str, nodes: Sequence[Node]) -> Node:
    """mqant's default: any live node of the type."""
    return random.choice(nodes)  # noqa: S311 - load spreading, not cryptography


def from_settings() -> "NodeRegistry":
    """The registry ``MQANT["REGISTRY"]`` names, with the selector ``MQANT["SELECTOR"]`` names."""
    spec: dict[str, Any] = conf.get("REGISTRY")
    cls = import_string(spec["BACKEND"])
    selector: Selector = import_string(conf.get("SELECTOR"))
    registry: NodeRegistry = cls(selector=selector, **spec.get("CONFIG", {}))
    return registry


class NodeRegistry:
    """The live nodes this process knows of: here, its own.

    The app registers each node it starts and deregisters it when it stops; callers pick a
    node with ``select`` (or ``lookup``, which may first ask the shared registry again).
    Subclasses that share nodes between processes override the async methods, and call
    ``_others_changed`` with what they read of the other processes' nodes.
    """

    def __init__(self, selector: Selector = random_selector) -> None:
        self.selector = selector
        self._own: dict[str, Node] = {}
        self._others: dict[str, Node] = {}
        # Nodes of other processes that stopped being offered and still answer their calls
        # in flight (their process drains): not selectable, not gone.
        self._others_draining: dict[str, Node] = {}
        self._by_id: dict[str, Node] = {}
        self._by_type: dict[str, list[Node]] = {}
        self._watchers: list[GoneWatcher] = []

    def watch_gone(self, watcher: GoneWatcher) -> None:
        """Call ``watcher`` with the nodes of other processes that vanish without draining."""
        if watcher not in self._watchers:
            self._watchers.append(watcher)

    def unwatch_gone(self, watcher: GoneWatcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    async def start(self) -> None:
        """Called once by the app, before the first ``register``."""

    async def close(self) -> None:
        """Called once by the app when it stops, after the last ``deregister``."""

    async def register(self, node: Node) -> None:
        """Make a node of this process selectable."""
        self._own[node.node_id] = node
        self._rebuild()

    async def deregister(self, node_id: str) -> None:
        """Stop offering a node of this process to callers."""
        self._own.pop(node_id, None)
        self._rebuild()

    async def lookup(self, target: str) -> Node:
        """``select``, for callers that may wait: a registry shared between processes asks
        again before it reports ServiceNotFound."""
        return self.select(target)

    def own(self) -> list[Node]:
        """The nodes of this process."""
        return list(self._own.values())

    def nodes(self, module_type: str | None = None) -> list[Node]:
        """Every live node known, or those of ``module_type``."""
        if module_type is None:
            return list(self._by_id.values())
        return list(self._by_type.get(module_type, ()))

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

    def _others_changed(self, live: dict[str, Node], draining: dict[str, Node]) -> None:
        """What was read of the other processes' nodes: ``live`` ones are offered, ``draining``
        ones finish their calls; a node in neither that was in one before is gone, and the
        watchers hear of it."""
        before = {**self._others_draining, **self._others}
        self._others, self._others_draining = live, draining
        self._rebuild()
        gone = [node for node_id, node in before.items() if node_id not in live | draining]
        if gone:
            for watcher in list(self._watchers):
                try:
                    watcher(gone)
                except Exception:
                    logger.exception("a watcher of gone nodes failed")

    def _rebuild(self) -> None:
        """Recompute the views from this process's nodes and the others'."""
        by_id = {**self._others, **self._own}
        by_type: dict[str, list[Node]] = {}
        for node in by_id.values():
            by_type.setdefault(node.module_type, []).append(node)
        self._by_id, self._by_type = by_id, by_type
