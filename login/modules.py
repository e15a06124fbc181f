"""Login: binds a session to a Django user (mqant's ``Login/HD_Login``), and counts who is
online for the other modules (``online_count``, an RPC-only handler: no ``HD_``, so no client
reaches it)."""

from typing import Any

from login import services
from mqant import NO_CONNECTION, HandlerError, Module, Session, accounts, register_module


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
        self.register_go("HD_Login", self.login)
        self.register_go("HD_Logout", self.logout)
        self.register_go("online_count", self.online_count)

    async def login(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``{"userName", "passWord"}`` → ``"login success <user>"``, the session bound."""
        if not isinstance(msg, dict):
            raise HandlerError("userName or passWord cannot be nil")
        username, password = msg.get("userName"), msg.get("passWord")
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            raise HandlerError("userName or passWord cannot be nil")
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
        self.online.logged_in(session_id=session.session_id, user_id=session.user_id)
        return f"login success {user.get_username()}"

    async def logout(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``Login/HD_Logout``: forget the user's stored session and make this one a guest."""
        if session.is_guest():
            raise HandlerError("Not Logined")
        user_id, session_id = session.user_id, session.session_id
        await session.logout()  # the session ends: the connection goes on under a new id
        self.online.session_closed(session_id=session_id)
        return f"logout success {user_id}"

    async def online_count(self) -> int:
        """RPC: how many distinct users are logged in through this node."""
        return self.online.count()

    async def on_session_closed(self, session: Session) -> None:
        self.online.session_closed(session_id=session.session_id)
