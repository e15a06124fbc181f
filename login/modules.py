"""Login: binds a session to a Django user (mqant's ``Login/HD_Login``)."""

from typing import Any

from channels.db import database_sync_to_async

from login import services
from mqant import HandlerError, Module, Session, register_module


@register_module
class Login(Module):
    """Settings: ``AutoRegister`` (default True) registers unknown user names."""

    module_type = "Login"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.auto_register = bool(settings.get("AutoRegister", True))
        self.register_go("HD_Login", self.login)

    async def login(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``{"userName", "passWord"}`` → ``"login success <user>"``, the session bound."""
        if not isinstance(msg, dict):
            raise HandlerError("userName or passWord cannot be nil")
        username, password = msg.get("userName"), msg.get("passWord")
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            raise HandlerError("userName or passWord cannot be nil")
        try:
            user = await database_sync_to_async(services.user_login)(
                username=username, password=password, auto_register=self.auto_register
            )
        except services.LoginError as err:
            raise HandlerError(str(err)) from err
        await session.bind(user.get_username())
        return f"login success {user.get_username()}"
