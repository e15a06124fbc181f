"""The chat page's HTML, its assets and the vendored MQTT.js (the browser tests are in
tests/e2e/test_browser.py)."""

import gzip
import hashlib
import re

import pytest
from django.conf import settings
from django.test import Client

from tests.e2e.server import ROOT

VENDOR = ROOT / "mqant" / "static" / "mqant" / "vendor"

# Closing a response ends the request, and Django then checks its database connections.
pytestmark = pytest.mark.django_db


def test_page_sets_the_csrf_cookie_and_its_assets_are_served():
    client = Client()
    page = client.get("/mqant/index.html")
    assert page.status_code == 200
    assert settings.CSRF_COOKIE_NAME in page.cookies
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert {a.rsplit("/", 1)[1] for a in assets} == {
        "chat.css",
        "mqtt.min.js",
        "mqant.js",
        "chat.js",
    }
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        response.close()
    assert 'data-api-login="/api/auth/login/"' in html


def test_mqant_redirects_to_the_page():
    response = Client().get("/mqant/")
    assert response.status_code == 302
    assert response["Location"] == "/mqant/index.html"


def test_vendored_mqtt_js_matches_its_note():
    note = (VENDOR / "README.md").read_text()
    match = re.search(r"## MQTT\.js (\S+)", note)
    assert match, "the note names no MQTT.js version"
    version = match.group(1)
    bundle = (VENDOR / "mqtt.min.js").read_bytes()
    assert f'version:"{version}"'.encode() in bundle
    assert hashlib.sha256(bundle).hexdigest() in note
    assert "MIT License" in (VENDOR / "LICENSE.md").read_text()
    assert gzip.decompress((VENDOR / "mqtt.min.js.gz").read_bytes()) == bundle


def test_mqtt_js_goes_out_gzipped_to_browsers_that_accept_it():
    client = Client()
    response = client.get("/static/mqant/vendor/mqtt.min.js", HTTP_ACCEPT_ENCODING="gzip, br")
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    body = response.getvalue()  # the streamed file
    response.close()
    assert gzip.decompress(body) == (VENDOR / "mqtt.min.js").read_bytes()


@pytest.mark.parametrize("name", ["mqant.js", "chat.js", "hitball.js"])
def test_page_scripts_use_no_eval_or_inline_html(name):
    # The page's Content-Security-Policy allows no eval, and text goes in as text.
    folder = ROOT / "mqant" if name == "mqant.js" else ROOT  # the framework's, the demo's
    source = (folder / "static" / "mqant" / name).read_text()
    assert "eval(" not in source
    assert "innerHTML" not in source


def test_page_names_the_sessions_user(django_user_model):
    client = Client()
    assert 'data-user=""' in client.get("/mqant/index.html").content.decode()
    user = django_user_model.objects.create_user(username="paged", password="x-long-pass-1")
    client.force_login(user)
    assert 'data-user="paged"' in client.get("/mqant/index.html").content.decode()


def test_the_site_root_leads_to_the_chat_page():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/mqant/index.html"


def csp(html: str) -> dict[str, str]:
    """The page's Content-Security-Policy, directive by directive."""
    match = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert match, "the page has no CSP"
    directives = (d.strip().split(" ", 1) for d in match.group(1).split(";") if d.strip())
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


# The CSP as it was before the gate's own WebSocket port: only connect-src may widen.
BASE_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "worker-src": "blob:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
}


def test_page_names_the_gates_websocket_port_and_its_csp_allows_it(settings):
    settings.MQANT = {**settings.MQANT, "WS_ADDR": "127.0.0.1:4653"}
    html = Client().get("/mqant/index.html", HTTP_HOST="localhost:8000").content.decode()
    assert 'data-ws-port="4653"' in html
    # The host the page was asked for (without its port), the listener's port; both schemes.
    assert csp(html) == {
        **BASE_CSP,
        "connect-src": "'self' ws://localhost:4653 wss://localhost:4653",
    }
    html = Client().get("/mqant/index.html", HTTP_HOST="127.0.0.1").content.decode()
    assert csp(html)["connect-src"] == "'self' ws://127.0.0.1:4653 wss://127.0.0.1:4653"
    # An IPv6 address cannot be a CSP source: none (chat.js tells to use a host name).
    html = Client().get("/mqant/index.html", HTTP_HOST="[::1]:8000").content.decode()
    assert 'data-ws-port="4653"' in html
    assert csp(html) == BASE_CSP
    settings.MQANT = {**settings.MQANT, "WS_ADDR": ":4654"}  # every interface
    html = Client().get("/mqant/index.html", HTTP_HOST="127.0.0.1:8000").content.decode()
    assert 'data-ws-port="4654"' in html
    assert csp(html)["connect-src"] == "'self' ws://127.0.0.1:4654 wss://127.0.0.1:4654"


def test_page_without_the_gates_websocket_listener_keeps_its_csp(settings):
    settings.MQANT = {**settings.MQANT, "WS_ADDR": ""}
    html = Client().get("/mqant/index.html").content.decode()
    assert 'data-ws-port=""' in html
    assert csp(html) == BASE_CSP


def test_page_refuses_a_host_outside_allowed_hosts(settings):
    # The CSP's host is Django's validated one: a forged Host header gets no page at all.
    settings.MQANT = {**settings.MQANT, "WS_ADDR": "127.0.0.1:4653"}
    response = Client().get("/mqant/index.html", HTTP_HOST="evil.example:8000")
    assert response.status_code == 400
