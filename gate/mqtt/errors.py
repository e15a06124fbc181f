"""The two ways things go wrong: the peer broke the protocol, or we misused the library."""


class ProtocolError(Exception):
    """The peer sent something MQTT does not allow; the connection must be closed.

    The message says what was expected and what came, e.g.
    ``Expected CONNECT as the first packet, got PUBLISH``.
    """


class PacketTooLarge(ProtocolError):
    """A packet's fixed header announced more bytes than the configured limit."""


class LocalProtocolError(Exception):
    """This side misused the library: an unencodable packet, or a call in the wrong state."""
