"""The Hitball page in a real browser: Debian's Chromium, headless, driven by Playwright,
against a real daphne running the Hitball module. A desktop page (MQTT 3.1.1 on daphne's
port) and a phone-sized one with touch (MQTT 3.1 on the gate's own WebSocket listener, as
mqant's page connects) join one arena and see each other's balls; the desktop one moves with
the keyboard, the phone one with a drag, and each sees the other move; the desktop one steers
onto a coin and eats it; both fire (a mouse
press, a touch press) and each sees the other's ball take the speed. Malformed pushes are
shown and ignored; after the server restarts both pages reconnect and join again. The page's
state is read through ``window.hitball.state()``, a copy. Screenshots go to test-artifacts/."""

import math
import time
from typing import Any

import pytest

from tests.e2e.server import ServerProcess
from tests.e2e.test_browser import DESKTOP, Page, chromium  # noqa: F401

pytestmark = pytest.mark.e2e

PHONE = {
    "viewport": {"width": 375, "height": 667},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
WAIT_MS = 15_000  # the longest any one wait of this module lasts
MOVE_RATE = 10  # HD_Move a second at most (hitball.js MOVE_EVERY_MS)
HOLD_S = 0.8  # how long a key or a drag steers
MIN_MOVE = 40  # px a steered ball must have travelled, as the other page sees it
STEER_SPEED = 5 / 0.022  # px a second a steered ball goes (hitball.js MOVE_STEP a frame)
AXIS_X, AXIS_Y = ("ArrowLeft", "ArrowRight"), ("ArrowUp", "ArrowDown")


class GamePage(Page):
    """A browser tab on the Hitball page, its console and page errors collected."""

    def __init__(self, browser: Any, port: int, context: dict[str, Any], query: str = "") -> None:
        super().__init__(browser, port, context)
        self.url = f"http://127.0.0.1:{port}/mqant/hitball.html{query}"
        self.page.set_default_timeout(WAIT_MS)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.page.evaluate("window.hitball.state()")
        return state

    def until(self, predicate: str, arg: Any = None) -> Any:
        """Wait (WAIT_MS at most) until ``predicate``, a JS function of (the page's state,
        arg), is truthy; its value."""
        handle = self.page.wait_for_function(
            f"([arg]) => ({predicate})(window.hitball.state(), arg)", arg=[arg], timeout=WAIT_MS
        )
        return handle.json_value()

    def joined(self) -> str:
        """The Rid this page plays as, once it has joined and its own ball is in play."""
        rid: str = self.until("(s) => s.joined && s.players[s.rid] && s.rid")
        return rid

    def ball(self, rid: str) -> dict[str, float]:
        """The ball ``rid`` as this page sees it."""
        ball: dict[str, float] = self.until("(s, rid) => s.players[rid]", rid)
        return ball

    def sees_moved(self, rid: str, x0: float, sign: int) -> dict[str, float]:
        """Wait until this page sees ball ``rid`` at least MIN_MOVE px from ``x0``, the
        ``sign`` way (+1: right)."""
        seen: dict[str, float] = self.until(
            "(s, a) => s.players[a[0]] && (s.players[a[0]].x - a[1]) * a[2] >= a[3]"
            " && s.players[a[0]]",
            [rid, x0, sign, MIN_MOVE],
        )
        return seen


def eat_a_coin(page: GamePage) -> int:
    """Steer the page's ball with the arrow keys onto the nearest coin (one axis, then the
    other) until the page has eaten one; that coin's Id."""
    deadline = time.monotonic() + 30
    for _ in range(12):
        state = page.state()
        if state["eaten"]:
            return int(state["lastEaten"])
        assert time.monotonic() < deadline, state
        me = state["players"][state["rid"]]
        coin = min(state["coins"], key=lambda c: math.hypot(c["x"] - me["x"], c["y"] - me["y"]))
        for delta, keys in ((coin["x"] - me["x"], AXIS_X), (coin["y"] - me["y"], AXIS_Y)):
            if abs(delta) >= 4:
                page.page.keyboard.down(keys[delta > 0])
                page.page.wait_for_timeout(min(abs(delta) / STEER_SPEED * 1000, 2500))
                page.page.keyboard.up(keys[delta > 0])
        page.page.wait_for_timeout(100)
    raise AssertionError(f"no coin eaten: {page.state()}")


def touch(cdp: Any, kind: str, x: float | None = None, y: float | None = None) -> None:
    """One touch event (a finger down, moved or lifted) through Chromium's input pipeline."""
    points = [] if x is None or y is None else [{"x": x, "y": y, "id": 1}]
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


def test_a_desktop_and_a_phone_page_play_one_arena(
    server: ServerProcess, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import expect

    browser = request.getfixturevalue("chromium")
    report: list[str] = []
    a = GamePage(browser, server.port, DESKTOP)
    b = GamePage(browser, server.port, PHONE, query="?mqtt=3&ws=listener")
    try:
        weight, requests = a.open()
        report.append(f"first load of the Hitball page: {weight} bytes in {requests} requests")
        b.open()
        a_rid, b_rid = a.joined(), b.joined()
        assert a_rid != b_rid
        for page in (a, b):
            expect(page.page.locator("#status")).to_have_attribute("data-state", "online")
            expect(page.page.locator("#status")).to_contain_text(page.state()["rid"])
        # Each sees the other's ball (one arena), and the coins the arena keeps.
        b_seen_by_a, a_seen_by_b = a.ball(b_rid), b.ball(a_rid)
        a.until("(s) => s.coins.length > 0")
        b.until("(s) => s.coins.length > 0")
        expect(a.page.locator("#players")).to_have_text("2")

        # The phone page fills its viewport with the canvas, takes touch for itself and
        # does not scroll.
        layout = b.page.evaluate("""() => {
            const canvas = document.getElementById("world").getBoundingClientRect();
            return {w: canvas.width, h: canvas.height, iw: innerWidth, ih: innerHeight,
                    touch: getComputedStyle(document.getElementById("world")).touchAction,
                    sw: document.documentElement.scrollWidth,
                    sh: document.documentElement.scrollHeight};
        }""")
        assert (layout["w"], layout["h"]) == (layout["iw"], layout["ih"]) == (375, 667), layout
        assert layout["touch"] == "none", layout
        assert layout["sw"] <= 375, layout
        assert layout["sh"] <= 667, layout

        # Desktop: an arrow key steers the ball; the phone page sees it travel.
        x0 = a_seen_by_b["x"]
        sign = 1 if x0 < 640 else -1
        key = "ArrowRight" if sign > 0 else "ArrowLeft"
        a.page.mouse.move(640, 400)
        started = time.monotonic()
        a.page.keyboard.down(key)
        a.page.wait_for_timeout(HOLD_S * 1000)
        a.page.keyboard.up(key)
        held = time.monotonic() - started
        seen = b.sees_moved(a_rid, x0, sign)
        report.append(f"desktop ball moved from x={x0:.0f} to x={seen['x']:.0f} (phone's view)")
        moves = a.state()["sent"]["move"]
        # Wait for the trailing move, then check the rate: at most ten a second.
        a.page.wait_for_timeout(300)
        moves = a.state()["sent"]["move"]
        assert 1 <= moves <= math.ceil((held + 0.3) * MOVE_RATE) + 1, (moves, held)

        # The desktop page steers onto a coin and eats it: the phone page sees it go, and a
        # new one come.
        newest = max(c["id"] for c in b.state()["coins"])
        eaten = eat_a_coin(a)
        b.until("(s, id) => !s.coins.some((c) => c.id === id)", eaten)
        b.until("(s, id) => s.coins.some((c) => c.id > id)", newest)
        state = a.state()  # (the ball may have crossed another coin on its way)
        assert state["sent"]["eat"] == state["eaten"] >= 1  # one HD_EatCoin a coin
        expect(a.page.locator("#eaten")).to_have_text(str(state["eaten"]))
        report.append(f"desktop ate coin {eaten}")

        # Phone: a drag steers its ball (the page does not scroll); the desktop page sees it.
        x0 = b_seen_by_a["x"]
        sign = 1 if x0 < 640 else -1
        cdp = b.context.new_cdp_session(b.page)
        cx, cy = 187, 420
        touch(cdp, "touchStart", cx, cy)
        for i in range(1, 9):  # 80 px the way the ball should go, in steps
            touch(cdp, "touchMove", cx + sign * 10 * i, cy)
            b.page.wait_for_timeout(20)
        b.page.wait_for_timeout(HOLD_S * 1000)
        touch(cdp, "touchEnd")
        seen = a.sees_moved(b_rid, x0, sign)
        report.append(f"phone ball moved from x={x0:.0f} to x={seen['x']:.0f} (desktop's view)")
        assert b.page.evaluate("scrollX === 0 && scrollY === 0")
        assert b.state()["sent"]["fire"] == 0  # a drag steers, it does not shoot

        # Fire: a still ball takes speed from a press and its release, as the other sees it.
        assert a.ball(b_rid)["xSpeed"] == 0 == a.ball(b_rid)["ySpeed"]
        assert b.ball(a_rid)["xSpeed"] == 0 == b.ball(a_rid)["ySpeed"]
        a.page.mouse.down()
        a.page.wait_for_timeout(300)
        a.page.mouse.up()
        touch(cdp, "touchStart", cx, cy)
        b.page.wait_for_timeout(300)
        touch(cdp, "touchEnd")
        for shooter, watcher, rid in ((a, b, a_rid), (b, a, b_rid)):
            shot = shooter.until("(s) => s.sent.fire === 1 && s.lastFire")
            assert 50 < shot["Power"] <= 200, shot  # charged while held
            assert -180 <= shot["Angle"] <= 180, shot
            speed = watcher.until(
                "(s, rid) => s.players[rid] && Math.hypot(s.players[rid].xSpeed,"
                " s.players[rid].ySpeed)",
                rid,
            )
            report.append(f"{rid} fired {shot}; seen moving at {speed:.2f} px a frame")
        a.page.wait_for_timeout(500)  # the balls roll on, the canvas shows it
        report.append(f"screenshot: {a.screenshot('hitball-desktop.png')}")
        report.append(f"screenshot: {b.screenshot('hitball-phone.png')}")

        # Malformed pushes (as if the server sent them) are shown and ignored; the game goes on.
        ignored = b.page.evaluate("""() => {
            const push = (topic, text) => mqant._dispatch(topic, new TextEncoder().encode(text));
            push("Hitball/OnMove", "not json");
            push("Hitball/OnMove", "[1, 2]");
            push("Hitball/OnAddCoins", '{"Id": "7", "X": 1, "Y": 2}');
            push("Hitball/OnEatCoins", "null");
            push("Hitball/OnJoin", '{"Rid": 5, "X": 1, "Y": 1}');
            push("Hitball/OnEnter", '{"Player": {}}');
            return window.hitball.state().ignored;
        }""")
        assert ignored == 6
        expect(b.page.locator("#problem")).to_contain_text("Ignored a malformed Hitball/")
        b.until("(s, rid) => s.players[rid] && s.joined", a_rid)

        assert a.errors == [], a.errors  # CSP violations and script errors included
        assert b.errors == [], b.errors

        # The server goes away and comes back: both pages reconnect and join again.
        assert "Traceback" not in server.output(), server.output()
        server.stop()
        for page in (a, b):
            expect(page.page.locator("#status")).to_have_attribute("data-state", "reconnecting")
        server.start()
        for page in (a, b):
            expect(page.page.locator("#status")).to_have_attribute(
                "data-state", "online", timeout=30_000
            )
        a_rid, b_rid = a.joined(), b.joined()
        a.ball(b_rid)
        b.ball(a_rid)
        # Chromium logs each refused attempt while the server was down; nothing else.
        for page in (a, b):
            others = [e for e in page.errors if "net::ERR_CONNECTION_REFUSED" not in e]
            assert others == [], page.errors
    finally:
        for page in (a, b):
            page.context.close()
    with capsys.disabled():
        print("\n" + "\n".join(report))


def test_a_page_with_an_unknown_ws_choice_says_why_it_does_not_connect(
    server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import expect

    browser = request.getfixturevalue("chromium")
    page = GamePage(browser, server.port, DESKTOP, query="?ws=nowhere")
    try:
        page.page.goto(page.url)
        expect(page.page.locator("#problem")).to_contain_text("Unknown ?ws=", timeout=WAIT_MS)
        expect(page.page.locator("#status")).to_have_attribute("data-state", "offline")
        assert page.errors == [], page.errors
    finally:
        page.context.close()
