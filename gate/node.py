"""This gate process's identity: the ``server_id`` of every session it owns, and its node in
the registry (type ``Gate``), through which modules ask it for its live sessions
(mqant.gates)."""

import secrets

from mqant.gates import GATE
from mqant.registry import Node

GATE_ID = f"{GATE}@{secrets.token_hex(8)}"


def gate_node(channel: str, process_id: str = "") -> Node:
    """This process's gate node, whose calls arrive on ``channel`` (the inbox's)."""
    return Node(GATE_ID, GATE, channel, events=frozenset(), process_id=process_id)
