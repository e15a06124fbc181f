"""The Hitball page's HTML: its assets, its Content-Security-Policy, the way to it from the
chat page (its script's rules are checked with the chat's in test_page.py; the browser test
is tests/e2e/test_hitball_browser.py)."""

import re

import pytest
from django.test import Client

from tests.api.test_page import BASE_CSP, csp

pytestmark = pytest.mark.django_db


def test_hitball_page_is_served_with_its_assets_and_no_inline_script_or_style():
    client = Client()
    page = client.get("/mqant/hitball.html")
    assert page.status_code == 200
    html = page.content.decode()
    assert csp(html) == {**BASE_CSP, "connect-src": csp(html)["connect-src"]}
    assert csp(html)["connect-src"].startswith("'self'")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert {a.rsplit("/", 1)[1] for a in assets} == {
        "hitball.css",
        "mqtt.min.js",
        "mqant.js",
        "hitball.js",
    }
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        response.close()
    # The CSP allows no inline script or style: every script is a file, nothing has a style.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert len(scripts) == 3
    assert all('src="/static/' in attrs and body == "" for attrs, body in scripts), scripts
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers
    assert '<canvas id="world"' in html


def test_hitball_page_names_the_gates_websocket_port_as_the_chat_page_does(settings):
    settings.MQANT = {**settings.MQANT, "WS_ADDR": "127.0.0.1:4653"}
    html = Client().get("/mqant/hitball.html", HTTP_HOST="localhost:8000").content.decode()
    assert 'data-ws-port="4653"' in html
    assert csp(html) == {
        **BASE_CSP,
        "connect-src": "'self' ws://localhost:4653 wss://localhost:4653",
    }
    settings.MQANT = {**settings.MQANT, "WS_ADDR": ""}
    html = Client().get("/mqant/hitball.html").content.decode()
    assert 'data-ws-port=""' in html
    assert csp(html) == BASE_CSP


def test_the_chat_page_links_to_hitball_and_back():
    chat = Client().get("/mqant/index.html").content.decode()
    assert re.search(r'<a [^>]*href="/mqant/hitball.html"', chat)
    game = Client().get("/mqant/hitball.html").content.decode()
    assert re.search(r'<a [^>]*href="/mqant/index.html"', game)
