"""daphne's HTTP side, guarded: its request class tells the socket when a request has arrived
whole and when it is done, and its HTTPFactory is wrapped in a SocketGuard. Built from daphne's
classes when install() runs, so that this module imports without daphne."""

from collections.abc import Callable
from typing import Any

from gate.daphne_guard.factory import SocketGuard
from gate.daphne_guard.wrapper import GuardedSocket


def guarded_request_class(web_request: type) -> type:
    """daphne's WebRequest, telling its socket when the request has arrived whole (daphne's
    ``process``) and when it is done (``finish``)."""

    class GuardedWebRequest(web_request):  # type: ignore[misc]
        def process(self) -> Any:
            socket = getattr(self.channel, "transport", None)
            if isinstance(socket, GuardedSocket):
                socket.request_arrived()
            return super().process()

        def finish(self) -> Any:
            socket = getattr(self.channel, "transport", None)
            if isinstance(socket, GuardedSocket):  # first: finishing may start the next request
                socket.request_done()
            return super().finish()

    return GuardedWebRequest


def guarded_http_factory(http_factory: type, request_class: type) -> Callable[[Any], SocketGuard]:
    """A stand-in for daphne's HTTPFactory class in daphne.server: called as
    ``HTTPFactory(server)``, it returns daphne's factory wrapped in a SocketGuard."""

    def build(server: Any) -> SocketGuard:
        return SocketGuard(http_factory(server), request_factory=request_class)

    return build
