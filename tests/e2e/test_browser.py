"""The chat page in a real browser: Debian's Chromium, headless, driven by Playwright, against a
real daphne. Two pages (a desktop one over MQTT 3.1.1, a phone-sized one over MQTT 3.1) and a
paho-mqtt client chat in one room; joins and leaves show live; the history shows after a
reload; after the server restarts, both pages reconnect, log in and rejoin by themselves. A page
on the gate's own WebSocket port (?ws=listener) chats with one on daphne's and a TCP client.
Screenshots go to test-artifacts/."""

import itertools
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.e2e.admin_client import create_superuser
from tests.e2e.clients import ChatClient
from tests.e2e.server import ROOT, ServerProcess
from tests.e2e.test_api_live import curl

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
FIRST_LOAD_BUDGET = 200_000  # bytes on the wire: the page and its assets, headers included
PASSWORD = "Tr1cky-pass-phrase"
_runs = itertools.count()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright (a fresh profile in a temporary directory)."""
    if not Path(CHROMIUM).exists():
        require_service("Chromium", f"no {CHROMIUM}: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        require_service("Playwright", f"{err}: pip install -r requirements-dev.txt")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """One browser tab on the chat page, in a context (cookies, storage) of its own."""

    def __init__(self, browser: Any, port: int, context: dict[str, Any], query: str = "") -> None:
        from playwright.sync_api import expect

        self.expect = expect
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.url = f"http://127.0.0.1:{port}/mqant/index.html{query}"
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.extend([m.text] if m.type == "error" else []))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self) -> tuple[int, int]:
        """Load the page; the bytes it took on the wire (headers included) and the requests."""
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        sizes: dict[str, int] = {}
        cdp.on(
            "Network.loadingFinished",
            lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])),
        )
        self.page.goto(self.url, wait_until="networkidle")
        cdp.detach()
        return sum(sizes.values()), len(sizes)

    def enter(self, name: str, button: str) -> None:
        """Log in (button "#login") or register ("#register") and wait until online."""
        self.page.fill("#username", name)
        self.page.fill("#password", PASSWORD)
        self.page.click(button)
        self.expect(self.page.locator("#me")).to_have_text(name)
        self.expect(self.page.locator("#status")).to_have_text("online")

    def join(self, room: str) -> None:
        self.page.fill("#room-name", room)
        self.page.click("#join-form button")
        self.expect(self.page.locator("#room-title")).to_have_text(room)

    def say(self, text: str, to: str = "*") -> None:
        self.page.select_option("#target", to)
        self.page.fill("#content", text)
        self.page.press("#content", "Enter")

    def sees(self, text: str) -> None:
        """A line of the room's messages contains ``text`` (now or within the timeout)."""
        self.expect(self.page.locator("#messages li", has_text=text)).to_have_count(1)

    def members(self) -> Any:
        return self.expect(self.page.locator("#members"))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path


def register_over_rest(port: int, name: str) -> None:
    body = json.dumps({"username": name, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/register/", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def test_two_pages_and_a_paho_client_chat_reload_and_reconnect(
    server: ServerProcess, chromium: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    n = f"{next(_runs)}{os.getpid() % 1000}"
    ann, ben, cat, room = f"ann{n}", f"ben{n}", f"cat{n}", f"lobby{n}"
    report: list[str] = []

    a = Page(chromium, server.port, DESKTOP)
    weight, requests = a.open()
    report.append(f"first load of the chat page: {weight} bytes in {requests} requests")
    assert weight < FIRST_LOAD_BUDGET, report
    a.enter(ann, "#register")
    a.join(room)
    a.members().to_have_text(f"{ann} (you)")

    paho = ChatClient(server.port)
    try:
        assert (
            paho.request("Login/HD_Login", {"userName": cat, "passWord": "pw-k3y9-pass"})["Error"]
            == ""
        )
        assert paho.request("Chat/HD_JoinChat", {"roomName": room})["Error"] == ""
        a.sees(f"{cat} joined")
        a.members().to_contain_text(cat)

        register_over_rest(server.port, ben)  # so that ben's page logs in rather than registers
        b = Page(chromium, server.port, PHONE, query="?mqtt=3")
        b.open()
        b.enter(ben, "#login")
        # The rooms that exist (ann's was stored when she joined it) are offered.
        expect(b.page.locator(f"#room-list option[value='{room}']")).to_have_count(1)
        b.join(room)
        for name in (ann, cat, ben):
            b.members().to_contain_text(name)
        a.sees(f"{ben} joined")
        assert paho.wait_json("Chat/OnJoin") == {"roomName": room, "user": ben}

        a.say("hello from ann")
        b.sees(f"{ann}: hello from ann")
        assert paho.wait_json("Chat/OnChat")["msg"] == "hello from ann"

        b.say("psst ann", to=ann)
        a.sees(f"{ben} (to you): psst ann")
        b.sees(f"{ben} → {ann}: psst ann")
        assert paho.nothing_on("Chat/OnChat")

        hi = {"roomName": room, "content": "hi from paho", "target": "*"}
        assert paho.request("Chat/HD_Say", hi)["Error"] == ""
        a.sees(f"{cat}: hi from paho")
        b.sees(f"{cat}: hi from paho")
        # A handler over HTTP, called with curl and ann's REST token: the browsers in the
        # room receive what it says.
        token = curl(server.port, "/api/auth/login/", {"username": ann, "password": PASSWORD})
        said = curl(
            server.port,
            "/api/call/Chat/HD_Say",
            {"roomName": room, "content": "said with curl"},
            token=token["token"],
        )
        assert said["Result"] == {"say": "say success"}, said
        b.sees(f"{ann}: said with curl")
        a.sees(f"{ann}: said with curl")
        while (pushed := paho.wait_json("Chat/OnChat"))["msg"] != "said with curl":
            assert pushed["msg"] == "hi from paho", pushed  # its own message came first
        report.append(f"screenshot: {a.screenshot('chat-desktop.png')}")
        report.append(f"screenshot: {b.screenshot('chat-phone.png')}")
        no_sideways_scroll = "document.documentElement.scrollWidth <= innerWidth"
        assert b.page.evaluate(no_sideways_scroll)

        assert paho.request("Chat/HD_LeaveChat", {"roomName": room})["Error"] == ""
        a.sees(f"{cat} left")
        b.sees(f"{cat} left")
        a.members().not_to_contain_text(cat)
    finally:
        paho.close()

    # A reload: log in again; the page rejoins its room and shows the history.
    a.page.reload()
    expect(a.page.locator("#username")).to_have_value(ann)  # the session is still logged in
    a.enter(ann, "#login")
    expect(a.page.locator("#room-title")).to_have_text(room)
    a.sees(f"{ann}: hello from ann")
    a.sees(f"{cat}: hi from paho")
    expect(a.page.locator("#messages li", has_text="psst")).to_have_count(0)  # not history
    b.sees(f"{ann} joined")
    assert a.errors == [], a.errors  # CSP violations and script errors included
    assert b.errors == [], b.errors

    # A network drop: the server goes away and comes back on the same ports.
    assert "Traceback" not in server.output(), server.output()
    server.stop()
    expect(a.page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    server.start()
    for page in (a, b):
        expect(page.page.locator("#status")).to_have_text("online", timeout=30_000)
        page.sees("reconnected")
    a.members().to_contain_text(ben)
    b.members().to_contain_text(ann)
    b.say("after the restart")
    a.sees(f"{ben}: after the restart")
    report.append(f"screenshot: {a.screenshot('chat-after-reconnect.png')}")

    # A staff user opens the admin and sees both pages' sessions, live.
    create_superuser(server, f"staff{n}", "staff-pass-1234")
    staff = chromium.new_context()
    admin = staff.new_page()
    base = f"http://127.0.0.1:{server.port}"
    admin.goto(f"{base}/admin/login/?next=/admin/sessions_store/liveconnection/")
    admin.fill("#id_username", f"staff{n}")
    admin.fill("#id_password", "staff-pass-1234")
    admin.click("input[type=submit]")
    rows = admin.locator("#result_list")
    expect(rows).to_contain_text(ann)
    expect(rows).to_contain_text(ben)
    shot = ARTIFACTS / "admin-live-connections.png"
    admin.screenshot(path=str(shot), full_page=True)
    report.append(f"screenshot: {shot}")
    staff.close()

    a.page.click("#logout")
    expect(a.page.locator("#login-view")).to_be_visible()
    b.members().not_to_contain_text(ann)
    me = a.context.request.get(f"http://127.0.0.1:{server.port}/api/auth/me/")
    assert me.status == 401  # the session ended

    with capsys.disabled():
        print("\n" + "\n".join(report))


def watch_websockets(page: Page) -> list[tuple[str, bytes]]:
    """The URL of each WebSocket the page opens, with the first frame it sends (CONNECT)."""
    sockets: list[tuple[str, bytes]] = []

    def opened(ws: Any) -> None:
        index = len(sockets)
        sockets.append((ws.url, b""))

        def sent(payload: str | bytes) -> None:
            if not sockets[index][1]:
                data = payload if isinstance(payload, bytes) else payload.encode()
                sockets[index] = (ws.url, data)

        ws.on("framesent", sent)

    page.page.on("websocket", opened)
    return sockets


def test_a_page_on_the_gates_own_websocket_port_chats_with_daphnes_and_tcp(
    server: ServerProcess, chromium: Any
) -> None:
    """?mqtt=3&ws=listener: MQTT 3.1 over the gate's own WebSocket listener (WS_ADDR), as mqant's
    page connects to port 3653; with a page on daphne's /mqtt and paho over TCP, in one room."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    n = f"{next(_runs)}{os.getpid() % 1000}"
    ann, ben, cat, room = f"ann{n}", f"ben{n}", f"cat{n}", f"ports{n}"

    a = Page(chromium, server.port, DESKTOP, query="?mqtt=3&ws=listener")
    b = Page(chromium, server.port, DESKTOP)
    a_sockets, b_sockets = watch_websockets(a), watch_websockets(b)
    for page, name in ((a, ann), (b, ben)):
        page.open()
        page.enter(name, "#register")
        page.join(room)
    paho = ChatClient(server.tcp_port, transport="tcp")
    try:
        login = {"userName": cat, "passWord": "pw-k3y9-pass"}
        assert paho.request("Login/HD_Login", login)["Error"] == ""
        assert paho.request("Chat/HD_JoinChat", {"roomName": room})["Error"] == ""
        for page in (a, b):
            page.members().to_contain_text(cat)

        a.say("from the gate's port")
        b.sees(f"{ann}: from the gate's port")
        assert paho.wait_json("Chat/OnChat")["msg"] == "from the gate's port"
        b.say("from daphne's")
        a.sees(f"{ben}: from daphne's")
        assert paho.wait_json("Chat/OnChat")["msg"] == "from daphne's"
        said = {"roomName": room, "content": "from tcp", "target": "*"}
        assert paho.request("Chat/HD_Say", said)["Error"] == ""
        a.sees(f"{cat}: from tcp")
        b.sees(f"{cat}: from tcp")
        a.screenshot("chat-ws-listener.png")  # the three of them in the room
    finally:
        paho.close()

    # One WebSocket each (no reconnect), to the port its query asked for; page A's CONNECT
    # names MQTT 3.1 ("MQIsdp", version 3), page B's 3.1.1 ("MQTT", version 4).
    assert [url for url, _ in a_sockets] == [f"ws://127.0.0.1:{server.ws_port}/mqtt"]
    assert [url for url, _ in b_sockets] == [f"ws://127.0.0.1:{server.port}/mqtt"]
    assert b"\x00\x06MQIsdp\x03" in a_sockets[0][1], a_sockets
    assert b"\x00\x04MQTT\x04" in b_sockets[0][1], b_sockets
    assert a.errors == [], a.errors  # CSP violations and script errors included
    assert b.errors == [], b.errors
    for page in (a, b):
        page.context.close()


def test_a_page_asking_for_a_websocket_listener_the_server_lacks_says_so(
    server: ServerProcess, chromium: Any
) -> None:
    """With WS_ADDR off the page's data-ws-port is empty (tests/api/test_page.py): here the
    page is served that way, and ?ws=listener shows why it cannot connect and opens nothing."""
    from playwright.sync_api import expect

    page = Page(chromium, server.port, DESKTOP, query="?ws=listener")
    sockets = watch_websockets(page)

    def without_listener(route: Any) -> None:
        response = route.fetch()
        html = response.text().replace(f'data-ws-port="{server.ws_port}"', 'data-ws-port=""')
        route.fulfill(response=response, body=html)

    page.page.route("**/mqant/index.html*", without_listener)
    page.open()
    error = page.page.locator("#login-error")
    expect(error).to_contain_text("no WebSocket listener of its own", timeout=15_000)
    page.page.fill("#username", f"nobody{os.getpid() % 1000}")
    page.page.fill("#password", PASSWORD)
    page.page.click("#login")
    expect(error).to_contain_text("open the page without ?ws=listener")
    expect(page.page.locator("#status")).to_have_text("offline")
    assert sockets == []
    assert page.errors == [], page.errors
    page.context.close()


MQANT_JS_CALLS = """async () => {
    const m = new Mqant();
    const ask = (topic, msg) => new Promise((resolve) => m.request(topic, msg, (reply) =>
        resolve({topic: reply.destinationName, body: JSON.parse(reply.payloadString)})));
    const offline = await ask("HelloWorld/HD_Say", {say: "early"});
    await new Promise((resolve, reject) =>
        m.init({mqttVersion: 3, onSuccess: resolve, onFailure: reject, reconnect: false}));
    const hi = await ask("HelloWorld/HD_Say", {say: "hi"});
    const nope = await ask("HelloWorld/HD_Nope", {say: "hi"});
    const raw = await ask("HelloWorld/HD_Say", "{not json}");
    m.destroy();
    return {offline, hi, nope, raw};
}"""


def test_mqant_js_keeps_mqants_request_api(server: ServerProcess, chromium: Any) -> None:
    page = Page(chromium, server.port, DESKTOP)
    page.open()
    calls = page.page.evaluate(MQANT_JS_CALLS)
    assert calls["offline"]["body"] == {"Trace": "", "Error": "not connected", "Result": None}
    assert calls["hi"]["topic"] == "HelloWorld/HD_Say/2"  # msgids count up from 1
    assert calls["hi"]["body"]["Result"] == "you say : hi"
    assert calls["nope"]["body"]["Error"] == "Remote function(HD_Nope) not found"
    assert calls["raw"]["body"]["Error"] == "The JSON format is incorrect"
    assert page.errors == []
    page.context.close()
