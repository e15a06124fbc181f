"""A client's call as mqant's gate routes it: the topic grammar, the payload, the errors and the
envelope, byte for byte (the gate's and the REST API's answers are built here)."""

import json
from typing import Any

import pytest

from mqant import RemoteError, ServiceNotFound, Session, routing, rpc
from mqant.registry import Node


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("Chat", None),
        ("", None),
        ("Chat/HD_Say", routing.Topic("Chat", "HD_Say", "")),
        ("Chat@n1/HD_Say/7", routing.Topic("Chat@n1", "HD_Say", "7")),
        ("Chat/HD_Say/", routing.Topic("Chat", "HD_Say", "")),
        ("Chat/HD_Say/7/8", routing.Topic("Chat", "HD_Say", "")),  # a msgid only with 3 parts
    ],
)
def test_parse_topic(topic, parsed):
    assert routing.parse_topic(topic) == parsed
    assert routing.wants_reply(topic) == (parsed is None or parsed.msgid != "")


def test_decode_payload():
    assert routing.decode_payload(b'{"a": 1}') == {"a": 1}
    assert routing.decode_payload(b"[1]") == b"[1]"  # not object-shaped: the bytes as they are
    with pytest.raises(ValueError):  # noqa: PT011 - every refusal is a ValueError
        routing.decode_payload(b'{"a": "\\ud800"}')


def test_encode_is_compact_utf8():
    reply = routing.envelope("t", "", {"msg": "héllo", "n": [1, 2]})
    assert (
        routing.encode(reply)
        == '{"Trace":"t","Error":"","Result":{"msg":"héllo","n":[1,2]}}'.encode()
    )


@pytest.mark.parametrize("result", [object(), {1j: 1}, "\ud800"])
def test_a_result_that_is_not_json_is_an_error(result, caplog):
    expected = {"Trace": "t", "Error": routing.NOT_JSON, "Result": None}
    assert json.loads(routing.encode(routing.envelope("t", "", result))) == expected
    assert "is not JSON" in caplog.text
    if result != "\ud800":  # the REST API checks with json.dumps's defaults, which pass it
        assert routing.checked(routing.envelope("t", "", result)) == expected


def session() -> Session:
    return Session(ip="1.2.3.4", network="tcp", session_id="s", server_id="g", channel="c",
                   topic="M/HD_x/1", trace_id="trace")  # fmt: skip


@pytest.fixture
def node(monkeypatch):
    """A module ``M`` whose handlers answer with what ``answers`` holds for them."""
    answers: dict[str, Any] = {}
    found = Node(module_type="M", node_id="M@1", channel="ch")

    async def select(target: str) -> Node:
        if target != "M":
            raise ServiceNotFound.for_type(target)
        return found

    async def reach(node: Node, fn: str, args: tuple[Any, ...], timeout: float) -> Any:
        answer = answers[fn]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(rpc, "select", select)
    monkeypatch.setattr(rpc, "reach", reach)
    return answers


async def test_dispatch(node):
    node.update(HD_ok={"a": 1}, HD_raw=b"\x00raw", HD_err=RemoteError("No room"))
    node["HD_boom"] = KeyError("secret")

    async def dispatch(target: str, handler: str, message: Any = None) -> Any:
        return await routing.dispatch(session(), target, handler, message)

    assert await dispatch("M", "HD_ok") == routing.envelope("trace", "", {"a": 1})
    assert await dispatch("M", "HD_raw") == b"\x00raw"
    assert await dispatch("M", "HD_err") == routing.envelope("trace", "No room", None)
    assert await dispatch("M", "HD_boom") == routing.envelope("trace", routing.INTERNAL_ERROR, None)
    refused = await dispatch("M", "ok")
    assert refused == routing.envelope("trace", "Method(ok) must begin with 'HD_'", None)


async def test_a_missing_module_is_reported_before_a_bad_payload(node):
    bad, decode = b"{nope}", routing.decode_payload
    missing = await routing.dispatch(session(), "X", "HD_ok", bad, decode)
    assert missing == routing.envelope("trace", "Service(type:X) not found", None)
    malformed = await routing.dispatch(session(), "M", "HD_ok", bad, decode)
    assert malformed == routing.envelope("trace", routing.JSON_ERROR, None)
