"""Why a login or a registration was refused: the text is what the client is told."""


class Refused(Exception):
    """A refusal the client may see; ``retry_after`` (seconds) when trying later helps."""

    retry_after: int | None = None


class WrongCredentials(Refused):
    """Wrong user name or password: one answer whichever it was."""


class InvalidName(Refused):
    """A user name no account may have (too long, characters the validator refuses)."""
