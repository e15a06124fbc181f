"""The two ways things go wrong: the peer broke the protocol, or we misused the library."""

from gate.mqtt import reasons


class ProtocolError(Exception):
    """The peer sent something MQTT does not allow; the connection must be closed.

    The message says what was expected and what came, e.g.
    ``Expected CONNECT as the first packet, got PUBLISH``. ``reason_code`` is the MQTT 5.0
    reason code a server puts in the DISCONNECT it sends before closing: MALFORMED_PACKET
    (0x81) for bytes that cannot be parsed, PROTOCOL_ERROR (0x82) by default for a packet
    that parses but breaks a rule, or a more precise one (TOPIC_ALIAS_INVALID...).
    """

    def __init__(self, message: str, reason_code: int = reasons.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class PacketTooLarge(ProtocolError):
    """A packet's fixed header announced more bytes than the configured limit."""

    def __init__(self, message: str, reason_code: int = reasons.PACKET_TOO_LARGE) -> None:
        super().__init__(message, reason_code)


class LocalProtocolError(Exception):
    """This side misused the library: an unencodable packet, or a call in the wrong state."""
