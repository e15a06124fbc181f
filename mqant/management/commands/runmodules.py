"""``manage.py runmodules --pid X``: run the modules the deployment gives process X, with no
HTTP and no gate, until SIGTERM or SIGINT; then drain and stop (mqant/app.py)."""

import asyncio
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mqant import config, health, runtime, tracing
from mqant.security import refuse_insecure_start

logger = logging.getLogger("mqant.runmodules")


class Command(BaseCommand):
    help = (
        "Run the mqant modules configured for one ProcessID (mqant's server.conf, "
        "MQANT_CONFIG), without HTTP, until SIGTERM or SIGINT; then drain and stop."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--pid",
            default=None,
            help="this process's ProcessID (default: MQANT_PROCESS_ID, else 'development')",
        )
        parser.add_argument(
            "--health",
            default="",
            metavar="HOST:PORT",
            help="answer GET /healthz and /readyz on this address (mqant.health); a stopping "
            "process is not ready",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=None,
            help='seconds to drain and stop (default: MQANT["SHUTDOWN_TIMEOUT"])',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            refuse_insecure_start()
        except ImproperlyConfigured as err:
            raise CommandError(str(err)) from err
        if options["pid"]:
            config.set_process_id(options["pid"])
        process_id = config.process_id()
        deployment = config.load()
        entries = [e for e in deployment.for_process(process_id) if e.module_type != config.GATE]
        if not entries:
            known = ", ".join(deployment.process_ids()) or "none"
            raise CommandError(
                f"{deployment.source} gives ProcessID {process_id!r} no modules to run "
                f"(ProcessIDs it names: {known})"
            )
        if "InMemoryChannelLayer" in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
            logger.warning(
                "the in-memory channel layer reaches no other process: set REDIS_URL so that "
                "gates can call these modules"
            )
        health_addr = None
        if options["health"]:
            host, _, port = options["health"].rpartition(":")
            if not port.isdigit():
                raise CommandError(f"Expected --health as host:port, got {options['health']!r}")
            health_addr = (host.strip("[]") or "127.0.0.1", int(port))
        asyncio.run(serve(options["shutdown_timeout"], health_addr))


async def serve(shutdown_timeout: float | None, health_addr: tuple[str, int] | None = None) -> None:
    """Start the modules, wait for SIGTERM or SIGINT, then stop them. A second signal stops
    at once, without waiting for the calls in flight. With ``health_addr``, /healthz and
    /readyz answer there from the start to the end."""
    try:
        tracing.start("mqant-modules", config.process_id())
    except ImproperlyConfigured as err:
        raise CommandError(f"Cannot trace: {err}") from err
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    probes = health.HealthServer(lambda: health.not_ready(started=True, stopping=stopping.is_set()))
    if health_addr is not None:
        try:
            port = await probes.start(*health_addr)
        except OSError as err:
            raise CommandError(f"Cannot answer health probes on {health_addr}: {err}") from err
        logger.info("health probes on http://%s:%d/readyz", health_addr[0], port)
    try:
        await _serve(loop, stopping, shutdown_timeout)
    finally:
        probes.close()
        if tracing.tracer is not None:  # the drain's spans included, sent in a bounded time
            await asyncio.to_thread(tracing.stop, tracing.FLUSH_TIMEOUT)


async def _serve(
    loop: asyncio.AbstractEventLoop, stopping: asyncio.Event, shutdown_timeout: float | None
) -> None:
    await runtime.start()
    runtime.freeze_start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    logger.info("stopping: draining the calls in flight")
    stop = asyncio.create_task(runtime.stop(shutdown_timeout))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.cancel)
    try:
        await stop
    except asyncio.CancelledError:
        logger.warning("stopped at once on a second signal")
    logger.info("stopped")
