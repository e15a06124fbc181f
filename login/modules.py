"""Login: binds a session to a Django user (mqant's ``Login/HD_Login``), and counts who is
online for the other modules (``online_count``, an RPC-only handler: no ``HD_``, so no client
reaches it).

A Login node that starts (a restart after a crash, say) counts again from the gates' census
(``on_node_started``): every live session bound to a user that no other live Login node
counts; once more after RECOUNT_AFTER seconds, when every gate knows the node, dropping the
sessions closed before the gates could tell it. Two Login nodes counting a session at once
leave it to the smaller node id, so that nobody counts twice."""

from dataclasses import dataclass
from typing import Annotated, Any

from login import services
from mqant import (
    NO_CONNECTION,
    HandlerError,
    Module,
    NonEmpty,
    Session,
    accounts,
    gates,
    handler,
    register_module,
)

RECOUNT_AFTER = gates.SETTLED_AFTER  # seconds between the start's recount and the second one


@dataclass
class Credentials:
    userName: Annotated[str, NonEmpty]
    passWord: str


@register_module
class Login(Module):
    """Settings: ``AutoRegister`` (default True) registers unknown user names, as mqant's
    clients expect, through the same policy as the REST register (mqant.accounts: the name's
    validator, Django's password validators, the per-address budget).

    Each node counts the users logged in through it until their connection closes; a module
    that wants everyone asks every Login node (see Chat).
    """

    module_type = "Login"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.auto_register = bool(settings.get("AutoRegister", True))
        self.online = services.OnlineUsers()
        self.recount_after = float(settings.get("RecountAfter", RECOUNT_AFTER))
        self._changed: set[str] | None = None  # sessions logged in or out during a recount

    @handler("HD_Login", invalid="userName or passWord cannot be nil")
    async def login(self, session: Session, msg: Credentials) -> str:
        """``{"userName", "passWord"}`` → ``"login success <user>"``, the session bound."""
        username, password = msg.userName, msg.passWord
        if not session.channel:
            # Over HTTP (/api/call) there is no connection to bind: say so before any
            # password is checked, so that this is no way to test passwords.
            raise HandlerError(NO_CONNECTION)
        try:
            user = await accounts.login(
                username=username,
                password=password,
                ip=session.ip,
                auto_register=self.auto_register,
            )
        except accounts.Refused as err:
            raise HandlerError(str(err)) from err
        await session.bind(user.get_username())
        self._changing(session.session_id)
        self.online.logged_in(
            session_id=session.session_id, user_id=session.user_id, server_id=session.server_id
        )
        return f"login success {user.get_username()}"

    @handler("HD_Logout", login_required=True)
    async def logout(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``Login/HD_Logout``: forget the user's stored session and make this one a guest."""
        user_id, session_id = session.user_id, session.session_id
        await session.logout()  # the session ends: the connection goes on under a new id
        self._changing(session_id)
        self.online.session_closed(session_id=session_id)
        return f"logout success {user_id}"

    @handler
    async def online_count(self) -> int:
        """RPC: how many distinct users are logged in through this node."""
        return self.online.count()

    @handler
    async def counted_sessions(self, session_ids: list[str]) -> list[str]:
        """RPC: those of ``session_ids`` this node counts (another node's recount asks)."""
        return self.online.counted(session_ids)

    async def on_session_closed(self, session: Session) -> None:
        self._changing(session.session_id)
        self.online.session_closed(session_id=session.session_id)

    async def on_node_started(self) -> None:
        """Count the users online from the gates now, and again once every gate knows this
        node."""
        await gates.at_start_and_settled(
            self.recount, "counting the users online", self.node_id, self.recount_after
        )

    async def recount(self) -> tuple[int, int]:
        """Make this node's count agree with the bound sessions on the gates; returns how
        many sessions were added and dropped. Sessions that logged in or out while the
        census was taken are left as they are; a session of a gate that did not answer
        stays."""
        changed: set[str] = set()
        self._changed = changed
        held = self.online.sessions()
        try:
            census = await gates.live_sessions()
            live = {s.session.session_id: s.session for s in census.sessions if s.session.user_id}
            elsewhere = await services.counted_elsewhere(sorted(live), here=self.node_id)
        finally:
            self._changed = None
        added = dropped = 0
        for session_id, session in live.items():
            if session_id not in changed and session_id not in elsewhere and session_id not in held:
                self.online.logged_in(
                    session_id=session_id, user_id=session.user_id, server_id=session.server_id
                )
                added += 1
        for session_id, gate in held.items():
            if session_id in changed:
                continue
            lower = elsewhere.get(session_id, self.node_id) < self.node_id
            if lower or (session_id not in live and gate in census.gates):
                self.online.session_closed(session_id=session_id)
                dropped += 1
        return added, dropped

    def _changing(self, session_id: str) -> None:
        if self._changed is not None:
            self._changed.add(session_id)
