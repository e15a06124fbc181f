"""A staff user driving the Django admin over HTTP, as a browser would (cookies, CSRF)."""

import http.cookiejar
import re
import subprocess
import sys
import urllib.parse
import urllib.request

from tests.e2e.server import ROOT, ServerProcess


def create_superuser(server: ServerProcess, username: str, password: str) -> None:
    env = {**server.env, "DJANGO_SUPERUSER_PASSWORD": password}
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput",
         "--username", username, "--email", f"{username}@example.invalid"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip


class AdminClient:
    def __init__(self, server: ServerProcess, username: str, password: str) -> None:
        self.base = f"http://127.0.0.1:{server.port}"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.get("/admin/login/")
        page = self.post("/admin/login/?next=/admin/", {"username": username, "password": password})
        if "Log out" not in page and "logout" not in page:
            raise AssertionError("admin login failed")

    def csrf(self) -> str:
        for cookie in self.jar:
            if cookie.name == "csrftoken":
                return str(cookie.value)
        raise AssertionError("no CSRF cookie")

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return str(response.read().decode())

    def post(self, path: str, data: dict[str, str | list[str]]) -> str:
        fields = {**data, "csrfmiddlewaretoken": self.csrf()}
        body = urllib.parse.urlencode(fields, doseq=True).encode()
        request = urllib.request.Request(
            self.base + path, data=body, headers={"Referer": self.base + path}
        )
        with self.opener.open(request, timeout=10) as response:
            return str(response.read().decode())

    def action(self, changelist: str, action: str, pks: list[str], **extra: str) -> str:
        data: dict[str, str | list[str]] = {"action": action, "_selected_action": pks, **extra}
        return self.post(changelist, data)


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)
