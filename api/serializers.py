"""The shapes of the REST API's requests and replies."""

from typing import Any

from rest_framework import serializers


class CredentialsSerializer(serializers.Serializer[Any]):
    """A user name and a password, to register or to log in."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=4096, write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )


class UserSerializer(serializers.Serializer[Any]):
    """The account as its owner sees it."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    is_staff = serializers.BooleanField(read_only=True)


class LoggedInSerializer(serializers.Serializer[Any]):
    """After login or registration: the API token (send it as ``Authorization: Token <key>``)
    and the user. The browser's session is logged in as well."""

    token = serializers.CharField(read_only=True)
    user = UserSerializer(read_only=True)


class ErrorSerializer(serializers.Serializer[Any]):
    """A refusal: ``detail`` says why."""

    detail = serializers.CharField(read_only=True)


def _keywords_unescaped(
    fields: dict[str, serializers.Field[Any, Any, Any, Any]],
) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    """``from`` is a Python keyword, so a field of that name is declared as ``from_``."""
    return {name.removesuffix("_"): field for name, field in fields.items()}


class RoomSerializer(serializers.Serializer[Any]):
    """A stored room: how much was said in it, and how many users are in it now (over every
    Chat node)."""

    name = serializers.CharField(read_only=True)
    message_count = serializers.IntegerField(read_only=True)
    members_online = serializers.IntegerField(read_only=True)


class MessageSerializer(serializers.Serializer[Any]):
    """A message of a room's history, as ``Chat/HD_JoinChat`` returns it:
    ``{"from", "msg", "time"}`` (time in seconds since the epoch)."""

    from_ = serializers.CharField(source="sender", read_only=True)
    msg = serializers.CharField(source="content", read_only=True)
    time = serializers.SerializerMethodField()

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return _keywords_unescaped(super().get_fields())

    def get_time(self, message: Any) -> float:
        return float(message.created_at.timestamp())


class LiveConnectionSerializer(serializers.Serializer[Any]):
    """A client connection of a gate that is alive."""

    session_id = serializers.CharField(read_only=True)
    user_id = serializers.CharField(read_only=True)
    ip = serializers.CharField(read_only=True)
    network = serializers.CharField(read_only=True)
    gate = serializers.CharField(source="gate_id", read_only=True)
    connected_at = serializers.DateTimeField(read_only=True)
    last_seen = serializers.DateTimeField(read_only=True)


class BroadcastSerializer(serializers.Serializer[Any]):
    """A system message to a room's members."""

    text = serializers.CharField(max_length=4000)


class ChatEventSerializer(serializers.Serializer[Any]):
    """A ``Chat/OnChat`` push."""

    roomName = serializers.CharField(read_only=True)
    from_ = serializers.CharField(read_only=True)
    target = serializers.CharField(read_only=True)
    msg = serializers.CharField(read_only=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return _keywords_unescaped(super().get_fields())


class EnvelopeSerializer(serializers.Serializer[Any]):
    """mqant's reply envelope: ``Error`` is "" when the call succeeded, and ``Result`` is the
    handler's result (null on error)."""

    Trace = serializers.CharField(read_only=True, help_text="32 hex digits")
    Error = serializers.CharField(read_only=True, allow_blank=True)
    Result = serializers.JSONField(read_only=True, allow_null=True)
