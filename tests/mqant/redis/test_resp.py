"""The RESP2 codec: commands as Redis reads them, and values however the stream is cut."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqant.redis import resp


def encode(value: Any) -> bytes:
    """What Redis sends for ``value`` (the test's side of the protocol)."""
    if isinstance(value, resp.ReplyError):
        return b"-%s\r\n" % value.encode()
    if isinstance(value, str):
        return b"+%s\r\n" % value.encode()
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(encode(item) for item in value)
    raise TypeError(value)


line = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=20)
values = st.recursive(
    st.binary(max_size=300)
    | st.integers()
    | line
    | line.map(resp.ReplyError)
    | st.tuples(line, st.binary(max_size=300)).map(lambda m: [b"message", m[0].encode(), m[1]]),
    lambda children: st.lists(children, max_size=4),
    max_leaves=10,
)


@given(st.lists(values, max_size=8), st.lists(st.integers(1, 400), max_size=30))
def test_values_come_out_whole_and_in_order_however_the_stream_is_cut(sent, cuts):
    stream = b"".join(encode(value) for value in sent)
    parser, received, pos = resp.Parser(), [], 0
    for size in [*cuts, len(stream)]:
        received += parser.feed(stream[pos : pos + size])
        pos += size
    assert received == sent


def test_nil_values_and_an_error_reply():
    assert resp.Parser().feed(b"$-1\r\n*-1\r\n-ERR no\r\n$0\r\n\r\n") == [
        None,
        None,
        resp.ReplyError("ERR no"),
        b"",
    ]


def test_commands_are_arrays_of_bulk_strings():
    assert resp.command("SUBSCRIBE", b"a\r\nb") == b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\na\r\nb\r\n"
    assert resp.publish(b"ch", b"") == resp.command("PUBLISH", "ch", b"")


def test_a_stream_that_is_not_resp_is_refused():
    with pytest.raises(resp.ProtocolError, match=r"Expected a RESP2 type byte, got b'\?'"):
        resp.Parser().feed(b"?what\r\n")
