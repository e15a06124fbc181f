"""MQTT.js in headless Chromium, for the MQTT 5.0 browser tests: the browser bundle the chat
page ships (mqant/static/mqant/vendor/, MQTT.js 5.16.0) and tests/e2e/mqtt5_page.js loaded
into a blank page, driven through ``window.mqttTest``."""

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import require_service
from tests.e2e.server import ROOT
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS

BUNDLE = ROOT / "mqant" / "static" / "mqant" / "vendor" / "mqtt.min.js"
PAGE_JS = ROOT / "tests" / "e2e" / "mqtt5_page.js"
WAIT_MS = 10_000  # any one packet a page waits for
EMPTY_PAGE = "<!doctype html><title>MQTT 5.0 test</title>"


def mqtt_bundle() -> str:
    """The path of MQTT.js's browser bundle, the one the chat page ships."""
    return str(BUNDLE)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, as tests/e2e/test_browser.py runs it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        require_service("Playwright", f"{err}: pip install -r requirements-dev.txt")
    if not shutil.which(CHROMIUM):
        require_service("Chromium", f"no {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class MqttJsPage:
    """An empty page of the origin ``http://127.0.0.1:<port>`` (in a context of its own) with
    MQTT.js and page.js loaded; ``errors`` holds what its console and scripts reported as
    errors.

    The page is the origin's real ``/healthz``, emptied: Chromium lets a page open a WebSocket
    to the loopback only when the page itself came from there (its Local Network Access
    checks), as the server's own pages do."""

    def __init__(self, browser: Any, bundle: str, port: int) -> None:
        self.context = browser.new_context()
        # The browser's own request for an icon (the server has none): not the test's error.
        self.context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        self.page = self.context.new_page()
        self.page.goto(f"http://127.0.0.1:{port}/healthz")
        self.page.set_content(EMPTY_PAGE)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.extend([m.text] if m.type == "error" else []))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.add_script_tag(path=bundle)
        self.page.add_script_tag(path=str(PAGE_JS))

    def call(self, method: str, *args: Any) -> Any:
        """``mqttTest.<method>(...args, WAIT_MS)``, awaited in the page."""
        script = f"(args) => mqttTest.{method}(...args)"
        return self.page.evaluate(script, [*args, WAIT_MS])

    def connect(self, url: str, **options: Any) -> dict[str, Any]:
        """Connect to ``url`` with MQTT 5.0: the CONNACK (reasonCode, properties)."""
        connack: dict[str, Any] = self.call("connect", url, options)
        return connack

    def request(
        self, topic: str, body: Any, *, response_topic: str, correlation: str, subscribe: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """MQTT 5.0's request/response with MQTT.js, QoS 1, Correlation Data given in hex
        (after a SUBSCRIBE to the response topic if ``subscribe``): the PUBLISH's outcome
        (``error``, ``puback``) and the reply (``topic``, ``payload``, ``properties``)."""
        if subscribe:
            self.call("subscribe", response_topic)
        options = {"qos": 1, "responseTopic": response_topic, "correlation": correlation}
        outcome: dict[str, Any] = self.call("publish", topic, json.dumps(body), options)
        reply: dict[str, Any] = self.call("reply", response_topic, correlation)
        return outcome, reply

    def state(self, name: str) -> Any:
        """One of what the page recorded: "messages", "disconnects", "closes", "errors"."""
        return self.page.evaluate(f"() => mqttTest.{name}")

    def wait_for(self, condition: str) -> None:
        """Wait (WAIT_MS at most) until the JavaScript ``condition`` on ``mqttTest`` holds."""
        self.page.wait_for_function(f"() => {condition}", timeout=WAIT_MS)

    def close(self) -> None:
        self.context.close()
