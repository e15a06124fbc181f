"""The named constructors of Session: a connection's guest session, a handler's per-call copy,
an HTTP caller's session."""

import re

from mqant import Session

HEX = re.compile(r"[0-9a-f]+")


def test_for_connection_reaches_the_connection_by_its_new_id():
    session = Session.for_connection(
        ip="1.2.3.4", network="ws", server_id="Gate@1", channel_of=lambda sid: f"inbox!{sid}"
    )
    assert HEX.fullmatch(session.session_id)
    assert len(session.session_id) == 16
    assert session.channel == f"inbox!{session.session_id}"
    assert (session.ip, session.network, session.server_id) == ("1.2.3.4", "ws", "Gate@1")
    assert session.is_guest()
    assert session.settings == {}
    assert session.trace_id == ""


def test_for_call_is_an_independent_copy_with_fresh_ids():
    live = Session.for_connection(ip="1", network="tcp", server_id="g", channel_of=str)
    live.user_id, live.settings = "ann", {"k": "v"}
    first, second = live.for_call("Chat/HD_Say/1"), live.for_call("Chat/HD_Say/2")
    assert first.state() | {"topic": "", "trace_id": "", "span_id": ""} == live.state()
    assert first.topic == "Chat/HD_Say/1"
    assert len(first.trace_id) == 32
    assert len(first.span_id) == 16
    assert HEX.fullmatch(first.trace_id + first.span_id)
    assert first.trace_id != second.trace_id
    first.settings["k"] = "changed"
    assert live.settings == {"k": "v"}


def test_for_http_has_no_connection():
    session = Session.for_http(user_id="ann", ip="1.2.3.4", topic="Chat/HD_Say")
    assert session.channel == ""
    assert session.network == "http"
    assert session.server_id == "http"
    assert session.user_id == "ann"
    assert session.topic == "Chat/HD_Say"
    assert len(session.session_id) == 16
    assert len(session.trace_id) == 32
