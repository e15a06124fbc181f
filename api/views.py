"""Account endpoints: parse the request, call ``api.services``, shape the reply.

API clients authenticate with a token (``Authorization: Token <key>``), the chat page with
Django's session and its CSRF token. Register and login go through mqant's account policy
(``mqant.accounts``): per-address budgets, a lockout after repeated failures, password
hashing on a pool of its own.

The chat's endpoints (rooms, history, handler calls, staff actions) are in ``api.chat_views``.
"""

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import login, logout
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from api import services
from api.serializers import (
    CredentialsSerializer,
    ErrorSerializer,
    LoggedInSerializer,
    UserSerializer,
)
from mqant import accounts

if TYPE_CHECKING:
    from django.contrib.auth.models import User

LOGIN_FAILED = "Unable to log in with the credentials provided."
LOCKED_OUT = "Too many failed logins for this user name or from this address."

REFUSALS = {
    403: OpenApiResponse(ErrorSerializer, description="CSRF check failed (browser requests)"),
    429: OpenApiResponse(ErrorSerializer, description="Throttled or locked out; see Retry-After"),
    503: OpenApiResponse(ErrorSerializer, description="Too many logins waiting; try again"),
}
NOT_LOGGED_IN = {401: OpenApiResponse(ErrorSerializer, description="No valid token or session")}


class Busy(exceptions.APIException):
    """Too many password checks are waiting; try again in a moment."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The server is busy; try again in a moment."
    default_code = "busy"


def refusal(err: accounts.Refused) -> exceptions.APIException:
    """The HTTP answer to a refusal of the account policy; wrong credentials of any kind
    get one text."""
    if isinstance(err, accounts.LockedOut):
        return exceptions.Throttled(wait=err.retry_after, detail=LOCKED_OUT)
    if isinstance(err, accounts.Throttled):
        return exceptions.Throttled(wait=err.retry_after, detail=str(err))
    if isinstance(err, accounts.Busy):
        return Busy()
    return LoginFailed()


class LoginFailed(exceptions.APIException):
    """Wrong user name or password (which one is not said)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = LOGIN_FAILED
    default_code = "login_failed"


def enforce_browser_csrf(request: Request) -> None:
    """Login and register change a browser's session, so a request that comes from a browser
    (it carries cookies or an Origin header) must pass Django's CSRF check, as Django's own
    login form does; API clients send neither and need no CSRF token."""
    meta = request.META
    if meta.get("HTTP_COOKIE") or meta.get("HTTP_ORIGIN"):
        SessionAuthentication().enforce_csrf(request)


def logged_in(request: Request, user: "User") -> dict[str, Any]:
    """Log the browser session in and return the LoggedInSerializer data."""
    # mqant.accounts checks the password itself, so no backend has tagged the user: name the
    # first configured one, as Django does when there is only one.
    login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
    return LoggedInSerializer({"token": services.token_issue(user=user), "user": user}).data


def credentials(request: Request) -> dict[str, str]:
    """The request's user name and password; a 400 with the field errors otherwise."""
    serializer = CredentialsSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class RegisterView(APIView):
    """Create an account (Django's password validators apply) and log in."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        operation_id="auth_register",
        request=CredentialsSerializer,
        responses={
            201: LoggedInSerializer,
            400: OpenApiResponse(description="Field errors: {field: [messages]}"),
            **REFUSALS,
        },
    )
    def post(self, request: Request) -> Response:
        enforce_browser_csrf(request)
        data = credentials(request)
        try:
            user = services.user_register(
                username=data["username"],
                password=data["password"],
                client_ip=BaseThrottle().get_ident(request),
            )
        except DjangoValidationError as err:
            raise exceptions.ValidationError(err.message_dict) from err
        except accounts.Refused as err:
            raise refusal(err) from err
        return Response(logged_in(request, user), status=status.HTTP_201_CREATED)


class LoginView(APIView):
    """Check a user name and password; return an API token and log the browser session in."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        operation_id="auth_login",
        request=CredentialsSerializer,
        responses={
            200: LoggedInSerializer,
            400: OpenApiResponse(ErrorSerializer, description=LOGIN_FAILED),
            **REFUSALS,
        },
    )
    def post(self, request: Request) -> Response:
        enforce_browser_csrf(request)
        data = credentials(request)
        try:
            user = services.user_authenticate(
                username=data["username"],
                password=data["password"],
                client_ip=BaseThrottle().get_ident(request),
            )
        except accounts.Refused as err:
            raise refusal(err) from err
        return Response(logged_in(request, user))


class LogoutView(APIView):
    """Log out: a token client's token is deleted, a browser's session ends."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="auth_logout",
        request=None,
        responses={204: None, **NOT_LOGGED_IN, 403: REFUSALS[403]},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, Token):
            services.token_revoke(token=request.auth)
        logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    """The logged-in user."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(operation_id="auth_me", responses={200: UserSerializer, **NOT_LOGGED_IN})
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)
