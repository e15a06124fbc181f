"""What a client may name and say: checks that raise ``Refused`` with the client's error text.

Every check is made here, in code: SQLite ignores a column's max_length, so the database
bounds nothing.
"""

import unicodedata

from chat.limits import ChatLimits, Refused

# Characters that are not text in a name: C0 and C1 controls (category Cc), line and
# paragraph separators, and the bidirectional overrides and isolates that make a name display
# as another one.
_NOT_IN_NAMES = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text: JSON's ``\\ud800`` escapes decode to lone
    surrogates, which neither UTF-8 nor the database can carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_room_name(name: str, *, limits: ChatLimits) -> None:
    """A room name a client may join: 1 to MaxRoomNameLength characters of text, no control
    characters."""
    if len(name) > limits.max_room_name:
        raise Refused(f"The room name is longer than {limits.max_room_name} characters")
    if not is_text(name):
        raise Refused("The room name is not valid Unicode text")
    if any(c in _NOT_IN_NAMES or unicodedata.category(c) == "Cc" for c in name):
        raise Refused("The room name contains a control character")


def check_member(user_id: str, *, limits: ChatLimits) -> None:
    """A user whose name every push and reply can carry: names stored before logins bounded
    them may be longer, and such a user joins no room."""
    if len(user_id) > limits.max_user_name:
        raise Refused(f"Your user name is longer than {limits.max_user_name} characters")


def check_message(content: str, target: str, *, limits: ChatLimits) -> None:
    """What ``Chat/HD_Say`` may carry besides its length (checked first, with mqant's text)."""
    if not is_text(content):
        raise Refused("The message is not valid Unicode text")
    if len(target) > limits.max_user_name:
        raise Refused(f"The target is longer than {limits.max_user_name} characters")
