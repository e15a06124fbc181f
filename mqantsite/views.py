"""The demo's pages: the chat page (a template, which sets the CSRF cookie its REST calls need)
and the Hitball page; both name their assets through {% static %} and the gate's own WebSocket
port."""

import re
from typing import Any

from django.views.generic import TemplateView

from gate.listeners import listener_settings, parse_addr

# The port of a Host header (host name validated by Django: a name or a bracketed IPv6 address).
_PORT = re.compile(r":\d*$")


def ws_listener_port() -> str:
    """The port of the gate's own MQTT-over-WebSocket listener (WS_ADDR), "" when it is off."""
    addr = listener_settings().ws_addr
    if not addr:
        return ""
    try:
        return str(parse_addr(addr)[1])
    except ValueError:  # such a listener never started: the server would not have
        return ""


class MqttPage(TemplateView):
    """A page that talks MQTT over WebSocket. ``?ws=listener`` makes it connect to the gate's
    own WebSocket listener rather than to the ASGI server's port: the page learns its port from
    ``data-ws-port``, and its CSP (``connect-src``) allows that one origin, on the host name the
    page was asked for, with both schemes (the page uses wss when it is https)."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        port = ws_listener_port()
        host = _PORT.sub("", self.request.get_host())  # validated against ALLOWED_HOSTS
        context["ws_port"] = port
        # A CSP source cannot name an IPv6 address (Chromium ignores one, with a console
        # error): such a page gets none, and chat.js says to open it by a host name instead.
        context["ws_origin"] = f"{host}:{port}" if port and not host.startswith("[") else ""
        return context


class ChatPage(MqttPage):
    """The chat page: accounts over REST, the chat over MQTT."""

    template_name = "mqant/index.html"


class HitballPage(MqttPage):
    """The Hitball game on a canvas, over MQTT; guests play, no account needed."""

    template_name = "mqant/hitball.html"
