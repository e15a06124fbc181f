"""JSON from clients, read strictly: whatever is accepted can be stored and sent again.

Python's ``json.loads`` accepts two things that break later, far from the client that sent
them: nesting deeper than the interpreter's stack (a ``RecursionError``, which is not a
``ValueError``) and lone surrogates (``"\\ud800"``, or the bytes ``ED A0 80``, which it
decodes with ``surrogatepass``). A lone surrogate is no text: encoding it as UTF-8 fails —
in a database write, in a push to other clients, in a log line — with a traceback per
message. Both are a ValueError here, at the door.
"""

import json
from typing import Any

# A lone surrogate can only come from a \\u escape or from the bytes ED A0..BF xx; text
# without either (nearly all of it) skips the check.
_ESCAPE, _SURROGATE_LEAD = b"\\u", b"\xed"


def loads(payload: bytes) -> Any:
    """The JSON value in ``payload``. Raises ValueError for invalid JSON, invalid UTF-8,
    nesting deeper than the stack, and strings holding lone surrogates."""
    try:
        value = json.loads(payload)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    except RecursionError:  # nesting deeper than the interpreter's stack: a JSON bomb
        raise ValueError("JSON nested too deeply") from None
    if _ESCAPE in payload or _SURROGATE_LEAD in payload:
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValueError("JSON holds a lone surrogate, which is not text") from None
    return value


def loads_object(payload: bytes) -> dict[str, Any]:
    """``loads`` for a JSON object; ValueError for any other value."""
    value = loads(payload)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
