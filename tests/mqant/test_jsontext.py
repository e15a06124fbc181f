"""Client JSON read strictly: what is accepted can be stored and sent again."""

import json

import pytest

from mqant import jsontext


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 200_000,
        b'{"content": "\\ud800"}',  # a lone surrogate, escaped
        b'{"content": "\xed\xa0\x80"}',  # the same, as raw bytes
        b'{"content": "\\udc00\\ud800"}',  # a pair in the wrong order
        b'{"a": ',
        b'{"a": "\xff"}',
    ],
)
def test_refused(payload):
    with pytest.raises(ValueError):  # noqa: PT011 - every refusal is a ValueError
        jsontext.loads(payload)


@pytest.mark.parametrize(
    "text", ["hi", "\U0001f600 by escape", "한국어 (ED 95 9C ...)", "", 'quote " and \\']
)
def test_text_passes(text):
    payload = json.dumps({"content": text}).encode()  # \\u escapes, pairs for the emoji
    assert jsontext.loads_object(payload) == {"content": text}
    raw = json.dumps({"content": text}, ensure_ascii=False).encode()
    assert jsontext.loads_object(raw) == {"content": text}


def test_loads_object_wants_an_object():
    with pytest.raises(ValueError, match="not a JSON object"):
        jsontext.loads_object(b"[1]")
