"""The same process serves HTTP: the admin, with its static files."""

import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read()


def test_admin_login_page_and_its_css(server):
    status, body = get(server.port, "/admin/login/")
    assert status == 200
    assert b"csrfmiddlewaretoken" in body
    status, css = get(server.port, "/static/admin/css/base.css")
    assert status == 200
    assert b"{" in css
