"""The app: starts the modules this process hosts, serves their calls from the channel layer,
and stops them in reverse order (mqant's ``app.Run``).

Under daphne there is no ASGI lifespan, so the app starts on first use in the server's event
loop: ``await ensure_started()`` is cheap once it has run.
"""

import asyncio
import logging
import secrets
import time
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

from mqant import conf
from mqant.errors import RPCError
from mqant.module import SESSION_CLOSED, Module
from mqant.registry import Node, NodeRegistry, module_classes
from mqant.server import ModuleServer
from mqant.types import CallMessage, ReplyMessage
from mqant.wire import decode_args, encode_value

logger = logging.getLogger(__name__)


class App:
    """The modules hosted by this process and the registry of live nodes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.registry = NodeRegistry()
        self.modules: list[tuple[Module, ModuleServer]] = []
        self.started = False
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._layer: BaseChannelLayer | None = None

    async def start(self) -> None:
        """Initialise and start every module configured for this process."""
        self._layer = get_channel_layer()
        wanted = conf.get("MODULES")
        module_settings: dict[str, dict[str, Any]] = conf.get("MODULE_SETTINGS")
        for module_type, cls in sorted(module_classes().items()):
            if wanted is not None and module_type not in wanted:
                continue
            await self._start_module(cls(), dict(module_settings.get(module_type, {})))
        self.started = True
        logger.info("mqant started: %s", ", ".join(n.node_id for n in self.registry.nodes()))

    async def stop(self, timeout: float = 60.0) -> None:
        """Stop serving, let ``run`` return, then ``on_destroy`` in reverse order of start."""
        self._closing.set()
        for node in self.registry.nodes():
            self.registry.remove(node.node_id)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        for module, server in reversed(self.modules):
            await server.stop()
            try:
                async with asyncio.timeout(timeout):
                    await module.on_destroy()
            except Exception:
                logger.exception("%r: on_destroy failed", module)
        self.started = False

    async def _start_module(self, module: Module, settings: dict[str, Any]) -> None:
        assert self._layer is not None
        module.node_id = f"{module.module_type}@{secrets.token_hex(8)}"
        await module.on_init(settings)
        if module.listens_to_session_closed():
            module.register_go(SESSION_CLOSED, module.on_session_closed)
        server = ModuleServer(module)
        server.start()
        self.modules.append((module, server))
        events = frozenset({SESSION_CLOSED}) if module.listens_to_session_closed() else frozenset()
        channel = await self._layer.new_channel("mqant.node.")
        node = Node(module.node_id, module.module_type, channel, events, server)
        self.registry.add(node)
        self._spawn(self._serve(node), f"{node.node_id} serve")
        self._spawn(module.run(self._closing), f"{node.node_id} run")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, node: Node) -> None:
        """Receive this node's calls from the channel layer, each in its own task."""
        assert self._layer is not None
        while True:
            message = await self._layer.receive(node.channel)
            if message.get("type") == "mqant.call":
                self._spawn(self._serve_one(node, message), f"{node.node_id} call")

    async def _serve_one(self, node: Node, message: CallMessage) -> None:
        assert self._layer is not None
        assert node.server is not None
        remaining = message["deadline"] - time.time()
        if remaining <= 0:  # the caller has given up already
            return
        reply: ReplyMessage = {
            "type": "mqant.reply",
            "id": message["id"],
            "result": None,
            "error": "",
            "kind": "",
        }
        try:
            async with asyncio.timeout(remaining):
                result = await node.server.invoke(message["fn"], decode_args(message["args"]))
            reply["result"] = encode_value(result)
        except TimeoutError:
            return  # the caller has given up too; a late reply would only be dropped
        except RPCError as err:
            reply["error"], reply["kind"] = str(err), err.kind
        if message["reply_to"]:
            await self._layer.send(message["reply_to"], reply)


_app: App | None = None
_starting: "asyncio.Task[None] | None" = None


def current() -> App | None:
    """The app started in the running event loop, if any."""
    app = _app
    if app is not None and app.started and app.loop is asyncio.get_running_loop():
        return app
    return None


async def ensure_started() -> App:
    """Start the app in the running loop if it has not been started there, and return it."""
    global _app, _starting
    app = current()
    if app is not None:
        return app
    loop = asyncio.get_running_loop()
    if _app is None or _app.loop is not loop or _starting is None:
        _app = App(loop)
        _starting = loop.create_task(_app.start())
    app, starting = _app, _starting
    await asyncio.shield(starting)
    return app


async def stop() -> None:
    """Stop the app of the running loop, if any."""
    global _app, _starting
    app = _app
    if app is not None and app.loop is asyncio.get_running_loop():
        _app = _starting = None
        await app.stop()
