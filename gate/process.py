"""The gate's parts of a process's runtime (mqant.runtime): its inbox, through which every
connection of the process is reached, and its heartbeat in the Presence.

``parts()`` is what the ASGI application (mqantsite.asgi) starts the runtime with; a
connection finds the inbox with ``inbox()``.
"""

from gate.heartbeat import GateHeartbeat
from gate.inbox import Inbox
from gate.persist import Sessions
from mqant import runtime


def parts() -> list[runtime.Part]:
    """New parts for a runtime: the inbox first, so that it receives before anything beats;
    the persistent sessions' stores."""
    return [Inbox(), GateHeartbeat(), Sessions()]


def inbox() -> Inbox:
    """The inbox of the running event loop's runtime; raises mqant.runtime.NoRuntime."""
    return runtime.get().part(Inbox)
