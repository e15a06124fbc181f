"""Wire facts shared by the encoder and the decoder: names, limits, topic rules."""

# Control packet type numbers (the high nibble of the first byte).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

TYPE_NAMES = (
    "reserved type 0",
    "CONNECT",
    "CONNACK",
    "PUBLISH",
    "PUBACK",
    "PUBREC",
    "PUBREL",
    "PUBCOMP",
    "SUBSCRIBE",
    "SUBACK",
    "UNSUBSCRIBE",
    "UNSUBACK",
    "PINGREQ",
    "PINGRESP",
    "DISCONNECT",
    "reserved type 15",
)

# Fixed-header flags every packet but PUBLISH must carry (MQTT 3.1.1, section 2.2.2).
REQUIRED_FLAGS = {SUBSCRIBE: 0b0010, UNSUBSCRIBE: 0b0010, PUBREL: 0b0010}

# Remaining lengths of the packets whose size never varies.
FIXED_LENGTHS = {
    CONNACK: 2,
    PUBACK: 2,
    PUBREC: 2,
    PUBREL: 2,
    PUBCOMP: 2,
    UNSUBACK: 2,
    PINGREQ: 0,
    PINGRESP: 0,
    DISCONNECT: 0,
}

MAX_REMAINING_LENGTH = 268_435_455  # four varint bytes of seven bits
SUBACK_CODES = frozenset({0, 1, 2, 0x80})


def topic_name_problem(topic: str) -> str | None:
    """Why ``topic`` cannot name a PUBLISH topic, or None when it can."""
    if not topic:
        return "Topic name is empty"
    if "+" in topic or "#" in topic:
        return f"Topic name {topic!r} contains a wildcard"
    if "\x00" in topic:
        return "Topic name contains U+0000"
    return None


def topic_filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid SUBSCRIBE/UNSUBSCRIBE filter, or None."""
    if not topic_filter:
        return "Topic filter is empty"
    if "\x00" in topic_filter:
        return "Topic filter contains U+0000"
    if "+" not in topic_filter and "#" not in topic_filter:
        return None
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        misplaced_hash = "#" in level and (level != "#" or index != last)
        if misplaced_hash or ("+" in level and level != "+"):
            return f"Topic filter {topic_filter!r} misplaces a wildcard"
    return None
