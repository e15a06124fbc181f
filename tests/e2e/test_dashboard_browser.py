"""The admin's live dashboard in a real browser (Debian's Chromium under Playwright) against a
real daphne: staff open it, paho clients chat meanwhile, and the charts draw the traffic by
themselves (connections, calls, latency, fan-out, errors); a user who is not staff gets
neither the page nor its data. A screenshot goes to test-artifacts/."""

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.admin_client import create_superuser
from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess
from tests.e2e.test_browser import ARTIFACTS, DESKTOP, PASSWORD, chromium, register_over_rest  # noqa: F401

pytestmark = pytest.mark.e2e

STAFF, STAFF_PASSWORD = "dash-boss", "dash-boss-pass-1234"
USER = "dash-ann"
CHARTS = ("connections", "calls", "latency", "fanout", "errors")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("dashboard")).start()
    create_superuser(proc, STAFF, STAFF_PASSWORD)
    register_over_rest(proc.port, USER)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


class Traffic:
    """Two paho clients in one room, over WebSocket and TCP, saying something every 0.1 s
    (and one call that fails, each round) until stopped."""

    def __init__(self, server: ServerProcess) -> None:
        self.clients = [ChatClient(server.port), ChatClient(server.tcp_port, transport="tcp")]
        for n, client in enumerate(self.clients):
            login = {"userName": f"dash-talker{n}", "passWord": "pw-d4sh-k3y9"}
            assert client.request("Login/HD_Login", login)["Error"] == ""
            assert client.request("Chat/HD_JoinChat", {"roomName": "dash"})["Error"] == ""
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._talk, daemon=True)
        self.thread.start()

    def _talk(self) -> None:
        while not self.stopping.wait(0.1):
            talker = self.clients[0]
            reply = talker.request("Chat/HD_Say", {"roomName": "dash", "content": "hi"})
            assert reply["Error"] == ""
            assert talker.request("HelloWorld/HD_Say", {})["Error"] == "say cannot be nil"

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        for client in self.clients:
            client.close()


def console_error(message: Any) -> bool:
    """An error in the console, but the 404 of /favicon.ico the admin's login page asks for
    (it names no icon; the dashboard names one)."""
    favicon = message.location.get("url", "").endswith("/favicon.ico")
    return bool(message.type == "error" and not favicon)


def chart_value(page: Any, chart: str) -> float:
    return float(page.locator(f"#chart-{chart}").get_attribute("data-latest") or 0)


def test_staff_see_the_traffic_drawn_live_and_others_are_refused(
    server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import expect

    browser = request.getfixturevalue("chromium")
    base = f"http://127.0.0.1:{server.port}"
    staff = browser.new_context(**DESKTOP)
    page = staff.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.extend([m.text] if console_error(m) else []))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/admin/")
    page.fill("#id_username", STAFF)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.click("a[href='/admin/dashboard/']")  # the admin's index links to it
    expect(page.locator("#dashboard-status")).to_contain_text("1 process answered", timeout=10_000)

    traffic = Traffic(server)
    try:
        for chart in CHARTS:  # every chart above zero once two polls have seen the traffic
            page.wait_for_function(
                "chart => Number(document.getElementById('chart-' + chart).dataset.latest) > 0",
                arg=chart,
                timeout=20_000,
            )
        page.wait_for_function(  # lines, not a lone point: drawn at each poll
            "() => Number(document.querySelector('#chart-calls path').dataset.points) >= 2",
            timeout=10_000,
        )
    finally:
        traffic.stop()
    values = {chart: chart_value(page, chart) for chart in CHARTS}
    assert values["connections"] >= 2, values  # the two paho clients
    assert values["calls"] > 1, values  # about 20 a second
    assert page.locator("#chart-calls path").first.get_attribute("d").count("L") >= 1
    expect(page.locator("#dashboard-processes tbody tr")).to_have_count(1)
    expect(page.locator("#dashboard-processes tbody tr").first).to_have_attribute(
        "data-answered", "true"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert errors == [], errors  # CSP violations and script errors included
    staff.close()

    # A user who is not staff: logged in (the chat page's REST login), yet refused both.
    user = browser.new_context(**DESKTOP)
    page = user.new_page()
    page.goto(f"{base}/mqant/index.html")  # the CSRF cookie
    csrf = next(c["value"] for c in user.cookies() if c["name"] == "csrftoken")
    login = user.request.post(
        f"{base}/api/auth/login/",
        data=json.dumps({"username": USER, "password": PASSWORD}),
        headers={"Content-Type": "application/json", "X-CSRFToken": csrf, "Referer": base},
    )
    assert login.status == 200, login.text()
    assert user.request.get(f"{base}/api/auth/me/").status == 200  # logged in indeed
    data = user.request.get(f"{base}/admin/dashboard/data/")
    assert data.status == 403
    assert data.json() == {"detail": "Staff only."}
    page.goto(f"{base}/admin/dashboard/")
    assert page.url.startswith(f"{base}/admin/login/?next=/admin/dashboard/"), page.url
    expect(page.locator("#mqant-dashboard")).to_have_count(0)
    user.close()
