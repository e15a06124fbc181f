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
