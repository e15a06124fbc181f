"""This gate process's identity: the ``server_id`` of every session it owns."""

import secrets

GATE_ID = f"Gate@{secrets.token_hex(8)}"
