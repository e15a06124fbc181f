"""Who is logged in through a Login node."""


class OnlineUsers:
    """The users logged in through one Login node, by the sessions they logged in with."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}  # session id → user id

    def logged_in(self, *, session_id: str, user_id: str) -> None:
        self._users[session_id] = user_id

    def session_closed(self, *, session_id: str) -> None:
        self._users.pop(session_id, None)

    def count(self) -> int:
        """Distinct users with at least one open session."""
        return len(set(self._users.values()))
