"""The app: starts the modules this process runs, serves their calls from the channel layer,
and stops them in reverse order (mqant's ``app.Run``).

Which modules run here is the deployment's business (mqant.config): the entries whose
ProcessID is this process's id. The process's runtime (mqant.runtime) starts and stops it.

Stopping drains: the nodes leave the registry so that callers pick others, a call that still
arrives is answered ``Service(type:X) not found`` at once, the calls in flight finish (with
the calls they make), then ``run`` returns and ``on_destroy`` runs in reverse order of start,
all within ``MQANT["SHUTDOWN_TIMEOUT"]``.
"""

import asyncio
import functools
import logging
import secrets
import time
from typing import Any, cast

from channels.layers import BaseChannelLayer, get_channel_layer

from mqant import conf, config, dependencies, handlers, metrics, timeouts, tracing
from mqant import registry as mqant_registry
from mqant.errors import RemoteError, RPCError, ServiceNotFound
from mqant.module import Module
from mqant.nodes import Node
from mqant.server import ModuleServer, in_handler
from mqant.snapshot import SNAPSHOT, snapshot
from mqant.subscription import Subscription
from mqant.types import CallMessage, ReplyMessage
from mqant.wire import decode_args, empty_reply, encode_value

logger = logging.getLogger(__name__)


class App:
    """The modules hosted by this process and the registry of live nodes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.registry = mqant_registry.from_settings()
        self.process_id = config.process_id()
        self.modules: list[tuple[Module, ModuleServer]] = []
        self._nodes: list[Node] = []
        self.started = False
        self.draining = False
        self._closing = asyncio.Event()
        self._runs: set[asyncio.Task[Any]] = set()
        self._hooks: set[asyncio.Task[Any]] = set()  # on_node_started, cancelled at stop
        self._subscriptions: list[Subscription] = []
        self._calls: set[asyncio.Task[Any]] = set()
        self._layer: BaseChannelLayer | None = None
        self._probe: dependencies.DatabaseProbe | None = None

    async def start(self) -> None:
        """Initialise and start every module the deployment gives this process.

        Raises ImproperlyConfigured for an invalid deployment; a module that fails to start
        stops the ones started before it.
        """
        server_conf = config.load()
        self._layer = get_channel_layer()
        try:
            await self.registry.start()
            for entry in server_conf.for_process(self.process_id):
                await self._start_entry(entry)
        except BaseException:
            await self.stop()
            raise
        self._know_handlers()
        self.started = True
        every = float(conf.get("DATABASE_PROBE"))
        if every > 0:
            self._probe = dependencies.DatabaseProbe(every=every, timeout=every)
            self._probe.start()
        logger.info(
            "mqant process %s started from %s: %s",
            self.process_id,
            server_conf.source,
            ", ".join(node.node_id for node in self.registry.own()) or "no modules",
        )

    def select_now(self, target: str) -> Node | None:
        """The node a call to ``target`` goes to if the registry's snapshot has it, without
        waiting; else None, and ``select`` asks the registry again (or finds a node of this
        stopping process, which has left the snapshot)."""
        try:
            return self.registry.select(target)
        except ServiceNotFound:
            return None

    async def select(self, target: str) -> Node:
        """The node a call to ``target`` goes to. While this process stops, its own nodes
        are still found by the calls its handlers make, and by no one else."""
        try:
            return await self.registry.lookup(target)
        except ServiceNotFound:
            node = self._draining_node(target) if self.draining and in_handler() else None
            if node is None:
                raise
            return node

    async def stop(self, timeout: float | None = None) -> None:
        """Drain, then stop: see the module's docstring. Bounded by ``timeout`` seconds
        (default ``MQANT["SHUTDOWN_TIMEOUT"]``)."""
        budget = float(conf.get("SHUTDOWN_TIMEOUT")) if timeout is None else timeout
        deadline = self.loop.time() + budget
        self.draining = True
        for module, server in self.modules:
            server.accepting = False
            await self._quietly(self.registry.deregister(module.node_id), "deregister")
        await self._wait(self._in_flight(), deadline, "calls in flight")
        self._closing.set()
        await self._wait(set(self._runs), deadline, "run() to return")
        for subscription in self._subscriptions:
            await self._quietly(subscription.stop(), "unsubscribing")
        for task in (*self._calls, *self._runs, *self._hooks):
            task.cancel()
        await asyncio.gather(*self._calls, *self._runs, *self._hooks, return_exceptions=True)
        for module, server in reversed(self.modules):
            await server.stop()
            left = max(deadline - self.loop.time(), 0.0)
            try:
                async with asyncio.timeout(left):
                    await module.on_destroy()
            except Exception:
                logger.exception("%r: on_destroy failed", module)
        await self._quietly(self.registry.close(), "closing the registry")
        if self._probe is not None:
            await self._probe.stop()
        self.started = False

    def _know_handlers(self) -> None:
        """Tell the metrics which handlers exist (the only values their call labels take):
        those every registered module type declares, those the modules here registered."""
        for module_type, cls in mqant_registry.module_classes().items():
            try:
                metrics.know_handlers(module_type, handlers.declared(cls))
            except ValueError:  # a class declaring a handler twice; it cannot start anyway
                metrics.know_handlers(module_type, ())
        for module, _ in self.modules:
            metrics.know_handlers(module.module_type, module.handlers)
        metrics.know_handlers(config.GATE, ())  # the gates' nodes (their census)

    async def _start_entry(self, entry: config.ModuleEntry) -> None:
        if entry.module_type == config.GATE:
            return  # the gate's entry is read by the gate (config.gate_settings)
        cls = mqant_registry.module_classes().get(entry.module_type)
        if cls is None:
            logger.warning(
                "%s runs module type %s (Id %s), but no module of that type is registered: skipped",
                self.process_id,
                entry.module_type,
                entry.id,
            )
            return
        await self._start_module(cls(), entry)

    async def _start_module(self, module: Module, entry: config.ModuleEntry) -> None:
        assert self._layer is not None
        module.node_id = f"{module.module_type}@{secrets.token_hex(8)}"
        await module.on_init(dict(entry.settings))
        events = module.register_event_handlers()
        server = ModuleServer(module)
        # The layer's default prefix, as every channel of the process: RedisChannelLayer
        # receives all of a process's channels through one Redis key per prefix, one
        # blocking read at a time, so a second prefix waits seconds behind the first.
        channel = await self._layer.new_channel()
        node = Node(module.node_id, module.module_type, channel, events, server, self.process_id)
        self.modules.append((module, server))
        self._nodes.append(node)
        await self._start_serving(node, server)
        self._spawn(module.run(self._closing), f"{node.node_id} run", self._runs)
        await self.registry.register(node)
        self._spawn(self._node_started(module), f"{node.node_id} started", self._hooks)

    @staticmethod
    async def _node_started(module: Module) -> None:
        try:
            await module.on_node_started()
        except Exception:
            logger.exception("%r: on_node_started failed", module)

    def _spawn(self, coro: Any, name: str, tasks: set[asyncio.Task[Any]]) -> None:
        task = self.loop.create_task(coro, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _draining_node(self, target: str) -> Node | None:
        for node in self._nodes:
            if target in (node.node_id, node.module_type):
                return node
        return None

    def _in_flight(self) -> set[asyncio.Task[Any]]:
        waits = {asyncio.ensure_future(server.wait_idle()) for _, server in self.modules}
        return waits | self._calls

    async def _wait(self, tasks: set[asyncio.Task[Any]], deadline: float, what: str) -> None:
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(deadline - self.loop.time(), 0.0))
        if pending:
            logger.warning("stopping: gave up waiting for %s", what)
        for task in pending:
            if task not in self._calls and task not in self._runs:
                task.cancel()

    @staticmethod
    async def _quietly(coro: Any, what: str) -> None:
        try:
            await coro
        except Exception:
            logger.exception("stopping: %s failed", what)

    async def _start_serving(self, node: Node, server: ModuleServer) -> None:
        """Serve the calls on the node's channel, each in its own task."""
        on_message = functools.partial(self._on_message, node, server, f"{node.node_id} call")
        subscription = Subscription(self._layer, node.channel, on_message, f"{node.node_id} serve")
        await subscription.start()
        self._subscriptions.append(subscription)

    def _on_message(
        self, node: Node, server: ModuleServer, name: str, message: dict[str, Any]
    ) -> None:
        if message.get("type") == "mqant.call":
            call = cast(CallMessage, message)
            if call.get("fn") == SNAPSHOT:  # the process's figures, for the admin's dashboard
                self._spawn(self._answer_snapshot(node, call), name, self._calls)
                return
            self._spawn(self._serve_one(node, server, call), name, self._calls)

    async def _serve_one(self, node: Node, server: ModuleServer, message: CallMessage) -> None:
        assert self._layer is not None
        remaining = message["deadline"] - time.time()
        if remaining <= 0:  # the caller has given up already
            return
        reply: ReplyMessage = empty_reply(message["id"])
        counts = server.counts(message["fn"])
        started, outcome = time.perf_counter(), metrics.CANCELLED
        try:
            if not server.accepting:  # the caller's registry is behind: it may pick another
                raise ServiceNotFound.for_type(node.module_type)
            caller = None if tracing.tracer is None else tracing.extract(message)
            async with timeouts.deadline(remaining):
                result = await server.invoke(
                    message["fn"], decode_args(message["args"]), caller=caller
                )
            reply["result"] = encode_value(result)
            outcome = metrics.OK
        except TimeoutError:
            outcome = metrics.TIMEOUT
            return  # the caller has given up too; a late reply would only be dropped
        except RPCError as err:
            reply["error"], reply["kind"] = str(err), err.kind
            outcome = metrics.outcome_of(err.kind)
        except Exception:
            outcome = metrics.ERROR
            raise
        finally:
            counts.done(outcome, time.perf_counter() - started)
        if message["reply_to"]:
            await self._reply(node, message, reply)

    async def _answer_snapshot(self, node: Node, message: CallMessage) -> None:
        """Answered by the process, whichever of its nodes is asked (mqant.dashboard)."""
        if message["deadline"] > time.time() and message["reply_to"]:
            reply = empty_reply(message["id"])
            reply["result"] = snapshot(self.process_id)
            await self._reply(node, message, reply)

    async def _reply(self, node: Node, message: CallMessage, reply: ReplyMessage) -> None:
        assert self._layer is not None
        try:
            try:
                await self._layer.send(message["reply_to"], reply)
            except (TypeError, ValueError):  # the layer cannot carry the result
                logger.exception("%s: the result of %s cannot be sent", node.node_id, message["fn"])
                failed = RemoteError("internal error")
                reply = {**reply, "result": None, "error": str(failed), "kind": failed.kind}
                await self._layer.send(message["reply_to"], reply)
        except Exception as err:
            # The caller will see its deadline pass (or Redis's outage); this node goes on.
            if dependencies.note(err) is None:
                logger.exception("%s: replying to %s failed", node.node_id, message["fn"])
