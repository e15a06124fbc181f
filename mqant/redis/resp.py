"""Redis's wire protocol (RESP2), as much as publishing and subscribing need: commands out,
replies and pushed messages in. Sans-IO, like the MQTT codec: bytes in, values out.

Values: bulk strings are ``bytes`` (``None`` when nil), integers ``int``, simple strings
``str``, arrays ``list`` (``None`` when nil), error replies ``ReplyError``.
"""

from typing import Any


class ReplyError(str):
    """An error reply (``-ERR ...``), its text without the leading dash."""


class ProtocolError(Exception):
    """The bytes from Redis are not RESP2."""


def command(*parts: bytes | str) -> bytes:
    """One command as Redis reads it: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def publish(channel: bytes, message: bytes) -> bytes:
    """``PUBLISH channel message``, built in one step: it is sent for every message."""
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(channel),
        channel,
        len(message),
        message,
    )


# A value not complete yet: the position returned with it.
_INCOMPLETE = -1
# How every message pushed to a subscriber starts: parsed by a shortcut, being most of what
# a subscriber's connection reads.
_MESSAGE = b"*3\r\n$7\r\nmessage\r\n"


class Parser:
    """Values from the bytes Redis sends, in order, however the stream is cut."""

    def __init__(self) -> None:
        self._buffer = b""
        # Bytes the buffer must hold before its first value can be complete: a big message
        # arriving in many reads is parsed once, not once per read.
        self._needed = 0
        self._end_needed = 0  # where the incomplete bulk string found last ends

    def feed(self, data: bytes) -> list[Any]:
        """Add ``data`` and return every value now complete."""
        buffer = self._buffer + data if self._buffer else data
        if len(buffer) < self._needed:
            self._buffer = buffer
            return []
        values = []
        pos = 0
        while pos < len(buffer):
            self._end_needed = 0
            if buffer.startswith(_MESSAGE, pos):
                value, end = self._message(buffer, pos + len(_MESSAGE))
            else:
                value, end = self._value(buffer, pos)
            if end == _INCOMPLETE:
                break
            values.append(value)
            pos = end
        self._buffer = buffer[pos:]
        self._needed = max(self._end_needed - pos, 0)
        return values

    def _value(self, buffer: bytes, pos: int) -> tuple[Any, int]:
        """The value at ``pos`` and the position after it, or (None, _INCOMPLETE)."""
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return None, _INCOMPLETE
        kind, line, start = buffer[pos], buffer[pos + 1 : eol], eol + 2
        if kind == 0x24:  # $: a bulk string of that many bytes, or nil
            size = int(line)
            if size < 0:
                return None, start
            end = start + size
            if len(buffer) < end + 2:
                self._end_needed = end + 2
                return None, _INCOMPLETE
            return buffer[start:end], end + 2
        if kind == 0x2A:  # *: an array of that many values, or nil
            return self._array(buffer, int(line), start)
        if kind == 0x3A:  # :
            return int(line), start
        if kind == 0x2B:  # +
            return line.decode(), start
        if kind == 0x2D:  # -
            return ReplyError(line.decode(errors="replace")), start
        raise ProtocolError(f"Expected a RESP2 type byte, got {buffer[pos : pos + 1]!r}")

    def _message(self, buffer: bytes, pos: int) -> tuple[Any, int]:
        """``[b"message", channel, data]``, from after its first element."""
        channel, pos = self._bulk(buffer, pos)
        if pos == _INCOMPLETE:
            return None, _INCOMPLETE
        data, pos = self._bulk(buffer, pos)
        if pos == _INCOMPLETE:
            return None, _INCOMPLETE
        return [b"message", channel, data], pos

    def _bulk(self, buffer: bytes, pos: int) -> tuple[Any, int]:
        if buffer[pos : pos + 1] != b"$":
            return self._value(buffer, pos)  # not what Redis sends: let _value say so
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return None, _INCOMPLETE
        start = eol + 2
        end = start + int(buffer[pos + 1 : eol])
        if len(buffer) < end + 2:
            self._end_needed = end + 2
            return None, _INCOMPLETE
        return buffer[start:end], end + 2

    def _array(self, buffer: bytes, size: int, pos: int) -> tuple[Any, int]:
        if size < 0:
            return None, pos
        items = []
        for _ in range(size):
            item, pos = self._value(buffer, pos)
            if pos == _INCOMPLETE:
                return None, _INCOMPLETE
            items.append(item)
        return items, pos
