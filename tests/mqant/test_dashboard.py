"""mqant.dashboard: the figures of every live process, for staff only, gathered within a
bound even when a process does not answer."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from mqant import config, dashboard, metrics, rpc
from mqant.nodes import Node
from mqant.snapshot import SNAPSHOT

DATA = "/admin/dashboard/data/"
PAGE = "/admin/dashboard/"
KEYS = {"at", "poll", "processes", "not_asked"}
ROW_KEYS = {"key", "process", "answered", "error", "snapshot"}


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


async def client_for(username: str | None, **flags) -> AsyncClient:
    client = AsyncClient()
    if username is not None:
        user = await sync_to_async(get_user_model().objects.create_user)(
            username=username, password="correct-horse-42", **flags
        )
        await client.aforce_login(user)
    return client


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_hashing")
async def test_the_data_is_for_active_staff_only(mqant_started):
    for client in (
        await client_for(None),
        await client_for("ann"),
        await client_for("former", is_staff=True, is_active=False),
    ):
        response = await client.get(DATA)
        assert response.status_code == 403
        assert response.json() == {"detail": "Staff only."}
    staff = await client_for("boss", is_staff=True)
    response = await staff.get(DATA)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert set(body) == KEYS
    [row] = body["processes"]  # the in-memory layer: this process alone
    assert set(row) == ROW_KEYS
    assert row["answered"] is True
    assert row["process"] == config.process_id()
    assert row["key"].startswith("Gate@")  # the process's gate node names it
    assert {"connections", "calls", "call_errors", "fanout", "call_seconds"} <= set(row["snapshot"])
    assert (await staff.post(DATA)).status_code == 405


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_hashing")
async def test_the_page_is_the_admins_staff_only_with_its_own_script_under_a_csp():
    response = await (await client_for(None)).get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/dashboard/")
    assert (await (await client_for("ann")).get(PAGE)).status_code == 302
    staff = await client_for("boss", is_staff=True)
    response = await staff.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'src="/static/mqant/dashboard.js"' in html
    assert f'data-url="{DATA}"' in html
    assert "<script>" not in html  # nothing inline: the CSP allows none
    assert "script-src 'self';" in response["Content-Security-Policy"]
    index = (await staff.get("/admin/")).content.decode()
    assert f'href="{PAGE}"' in index


async def test_a_process_that_does_not_answer_is_named_and_the_rest_shown_in_time(
    mqant_started,
):
    """A node of another process, as a shared registry reports it, whose channel nobody
    reads (that process hangs)."""
    channel = await get_channel_layer().new_channel()
    ghost = Node("Chat@0000000000000000", "Chat", channel, process_id="ghost")
    mqant_started.registry._others_changed({ghost.node_id: ghost}, {})
    try:
        started = time.monotonic()
        result = await dashboard.gather(timeout=0.3)
        elapsed = time.monotonic() - started
    finally:
        mqant_started.registry._others_changed({}, {})
    assert elapsed < 1.0
    own, other = result["processes"]
    assert own["answered"] is True
    assert other == {
        "key": ghost.node_id,
        "process": "ghost",
        "answered": False,
        "error": "deadline exceeded",
        "snapshot": None,
    }


async def test_one_node_per_process_is_asked_its_gate_first(mqant_started):
    nodes = [
        Node("Chat@2", "Chat", "c2", process_id="modules1"),
        Node("Login@1", "Login", "c1", process_id="modules1"),
        Node("Gate@9", "Gate", "c9", process_id="gate2"),
        Node("Chat@3", "Chat", "c3", process_id="gate2"),
        Node("Old@1", "Old", "c4"),
    ]
    chosen = dashboard._one_per_process(nodes)
    assert [node.node_id for node in chosen] == ["Old@1", "Gate@9", "Chat@2"]


async def test_a_module_node_answers_the_snapshot_for_its_process(mqant_started):
    """Over the channel layer, as another process would ask it (not the local shortcut)."""
    [chat] = [node for node in mqant_started.registry.own() if node.module_type == "Chat"]
    remote = Node(chat.node_id, chat.module_type, chat.channel, process_id=chat.process_id)
    answer = await dashboard._ask(remote, 2.0)
    assert answer["answered"] is True, answer
    assert answer["snapshot"]["process"] == config.process_id()
    assert await rpc.call_node(remote, SNAPSHOT, (), timeout=2.0)


async def test_the_gate_node_answers_the_snapshot_for_its_process(mqant_started):
    [gate] = [node for node in mqant_started.registry.own() if node.module_type == "Gate"]
    assert gate.server is None  # answered by the inbox, over the channel layer
    answer = await dashboard._ask(gate, 2.0)
    assert answer["answered"] is True, answer
    assert answer["snapshot"]["process"] == config.process_id()


async def test_past_the_most_processes_asked_the_rest_are_counted(mqant_started, monkeypatch):
    monkeypatch.setattr(dashboard, "MAX_PROCESSES", 2)
    layer = get_channel_layer()
    ghosts = {
        f"Chat@{n:016}": Node(
            f"Chat@{n:016}", "Chat", await layer.new_channel(), process_id=f"p{n}"
        )
        for n in range(5)
    }
    mqant_started.registry._others_changed(ghosts, {})
    try:
        result = await dashboard.gather(timeout=0.2)
    finally:
        mqant_started.registry._others_changed({}, {})
    assert [row["process"] for row in result["processes"][1:]] == ["p0", "p1"]
    assert result["not_asked"] == 3


async def test_a_process_answering_what_cannot_be_read_is_named_and_the_rest_shown(
    mqant_started,
):
    """A node of another process that answers the snapshot with a reply no caller can decode
    (a Session marker around a number: a lying or broken process): that process is named as
    not answering; the others, this one included, are still shown."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    liar = Node("Chat@1111111111111111", "Chat", channel, process_id="liar")

    async def answer_once() -> None:
        message = await layer.receive(channel)
        reply = {"type": "mqant.reply", "id": message["id"], "error": "", "kind": ""}
        await layer.send(message["reply_to"], {**reply, "result": {"__mqant_session__": 1}})

    answering = asyncio.create_task(answer_once())
    mqant_started.registry._others_changed({liar.node_id: liar}, {})
    try:
        result = await dashboard.gather(timeout=1.0)
    finally:
        mqant_started.registry._others_changed({}, {})
        answering.cancel()
    own, other = result["processes"]
    assert own["answered"] is True
    assert other["process"] == "liar"
    assert other["answered"] is False
    assert other["snapshot"] is None
    assert other["error"] == "an answer that cannot be read"


async def test_the_dashboards_own_asks_are_not_counted_as_the_processes_rpc(mqant_started):
    """The asks of the dashboard, every 2 s per process, are not RPC calls of the project: a
    hung process's timeouts would show in the charts as RPC errors and latency, while the
    project's modules call nothing. (The modules' own census of the gates may run
    meanwhile: only the hung process's module type is looked at.)"""
    channel = await get_channel_layer().new_channel()
    ghost = Node("Chat@2222222222222222", "Chat", channel, process_id="hung")
    before = rpc_figures("Chat")
    mqant_started.registry._others_changed({ghost.node_id: ghost}, {})
    try:
        result = await dashboard.gather(timeout=0.2)
    finally:
        mqant_started.registry._others_changed({}, {})
    assert result["processes"][1]["error"] == "deadline exceeded"
    assert rpc_figures("Chat") == before


def rpc_figures(target: str) -> tuple[dict[str, float], int]:
    """The RPC calls to ``target`` by outcome, and how many were timed."""
    calls = {
        outcome: child.value
        for (name, outcome), child in metrics.RPC_CALLS.children.items()
        if name == target
    }
    timed = metrics.RPC_SECONDS.children.get((target,))
    return calls, 0 if timed is None else sum(timed.counts)
