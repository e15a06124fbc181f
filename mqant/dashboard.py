"""The admin's live dashboard: every live process's figures (mqant.snapshot), gathered by the
gate that serves the admin, and the two views that show them to staff.

``gather()`` asks one node of each live process of the registry (its gate node when it has
one) for its snapshot, all at once, each within ``ASK_TIMEOUT``; this process's own is read
directly. A process that does not answer in time, or fails, is reported as such, with the
reason, and the others are shown: the dashboard never waits longer than one timeout. With
the in-memory channel layer there is one process, and one snapshot.

The page (``/admin/dashboard/``) polls ``data/`` every 2 s and turns successive totals into
rates itself; the server keeps nothing between requests.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from mqant import config, rpc, runtime
from mqant.errors import RPCError
from mqant.nodes import Node
from mqant.snapshot import SNAPSHOT, clean, snapshot

ASK_TIMEOUT = 1.0  # seconds a process has to answer with its snapshot
MAX_PROCESSES = 64  # processes asked at most; the others are counted, not asked
POLL_SECONDS = 2  # how often the page asks
GATE = config.GATE
# What a row says of a process whose answer could not be read (the log says why).
UNREADABLE = "an answer that cannot be read"

logger = logging.getLogger(__name__)

# The page's own scripts and styles only (static/mqant/dashboard.js): no inline code.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


async def gather(timeout: float = ASK_TIMEOUT) -> dict[str, Any]:
    """Every live process's snapshot: ``{"at", "processes": [{"key", "process", "answered",
    "error", "snapshot"}], "not_asked"}``, this process first. ``key`` names the node asked
    (a process that restarts gets a new one, so rates start afresh)."""
    running = runtime.current()
    own_id = config.process_id()
    if running is None:  # served where no runtime runs (a WSGI server): this process alone
        return _result([_row(own_id, own_id, _own(own_id))], 0)
    own = running.app.registry.own()
    own_key = _one_per_process(own)[0].node_id if own else own_id
    mine = {node.node_id for node in own}
    others = _one_per_process(
        [node for node in running.app.registry.nodes() if node.node_id not in mine]
    )
    asked = others[:MAX_PROCESSES]
    answers = await asyncio.gather(*(_ask(node, timeout) for node in asked))
    return _result([_row(own_key, own_id, _own(own_id)), *answers], len(others) - len(asked))


def _own(process_id: str) -> dict[str, Any] | None:
    """This process's snapshot, within the bounds of the others'."""
    return clean(snapshot(process_id))


def _one_per_process(nodes: list[Node]) -> list[Node]:
    """One node of each process (its gate node first), in a stable order. A node without a
    process id (a registry of an older version) stands for itself."""
    chosen: dict[str, Node] = {}
    for node in sorted(nodes, key=lambda n: (n.module_type != GATE, n.node_id)):
        chosen.setdefault(node.process_id or node.node_id, node)
    return sorted(chosen.values(), key=lambda n: (n.process_id, n.node_id))


async def _ask(node: Node, timeout: float) -> dict[str, Any]:
    try:
        # Not counted in the RPC metrics, which the dashboard shows: its own asks (a hung
        # process's timeouts) would look like the project's traffic and errors.
        answer = await rpc.reach(node, SNAPSHOT, (), timeout)
    except RPCError as err:  # deadline exceeded, Redis unavailable, a node of an older version
        return _row(node.node_id, node.process_id, None, str(err))
    except Exception as err:  # a reply that cannot be decoded, the layer's own failure
        # One line, no traceback: a broken process would write one at each poll of each page.
        logger.warning("the snapshot of %s could not be read: %.200r", node.node_id, err)
        return _row(node.node_id, node.process_id, None, UNREADABLE)
    figures = clean(answer)
    if figures is None:
        return _row(node.node_id, node.process_id, None, "an answer of another shape")
    return _row(node.node_id, node.process_id, figures)


def _row(
    key: str, process_id: str, figures: dict[str, Any] | None, error: str = ""
) -> dict[str, Any]:
    return {
        "key": key,
        "process": process_id,
        "answered": figures is not None,
        "error": error[:200],
        "snapshot": figures,
    }


def _result(rows: list[dict[str, Any]], not_asked: int) -> dict[str, Any]:
    return {"at": time.time(), "poll": POLL_SECONDS, "processes": rows, "not_asked": not_asked}


def data(site: AdminSite) -> Callable[[HttpRequest], Coroutine[Any, Any, HttpResponse]]:
    """The figures as JSON, for those ``site`` lets in (Django's admin: active staff), 403
    for anyone else; GET only, never cached."""

    @never_cache
    @require_GET
    async def view(request: HttpRequest) -> HttpResponse:
        if not await sync_to_async(site.has_permission)(request):
            return JsonResponse({"detail": "Staff only."}, status=403)
        response = JsonResponse(await gather())
        response["Content-Security-Policy"] = CSP
        return response

    return view


def page(site: AdminSite) -> Callable[[HttpRequest], HttpResponse]:
    """The dashboard's page in ``site``: its charts are drawn by static/mqant/dashboard.js."""

    @require_GET
    def view(request: HttpRequest) -> HttpResponse:
        context = {**site.each_context(request), "title": "Live dashboard", "poll": POLL_SECONDS}
        response = TemplateResponse(request, "admin/mqant/dashboard.html", context)
        response["Content-Security-Policy"] = CSP
        return response

    return site.admin_view(view)


def urls(site: AdminSite = admin.site) -> list[URLPattern]:
    """The dashboard's URLs, to include before the admin's own::

    path("admin/dashboard/", include(mqant.dashboard.urls())),
    path("admin/", admin.site.urls),

    Both let in whom ``site`` does (``AdminSite.has_permission``: active staff): others are
    sent to the admin's login page, or answered 403 for the data."""
    return [
        path("", page(site), name="mqant-dashboard"),
        path("data/", data(site), name="mqant-dashboard-data"),
    ]
