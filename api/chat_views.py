"""Chat endpoints: rooms and their history, handler calls over HTTP, and the staff's actions
on live connections and rooms. Views parse, authorize, call ``api.selectors`` or
``api.services`` and shape the reply.

A handler called over HTTP gets a session of its own with no connection (see
``services.handler_call``): what the handler pushes to that session goes nowhere, and a
session operation (bind, set, close...) fails with "The session has no live connection".
Pushes still reach the user where they are connected when the module sends them to its own
members, as Chat does: ``Chat/HD_Say`` over HTTP reaches the room's members, the user's own
connections among them.
"""

from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from api import selectors, services
from api.parsers import StrictJSONParser
from api.serializers import (
    BroadcastSerializer,
    ChatEventSerializer,
    EnvelopeSerializer,
    ErrorSerializer,
    LiveConnectionSerializer,
    MessageSerializer,
    RoomSerializer,
)
from chat.models import Message, Room
from sessions_store.models import LiveConnection

NOT_LOGGED_IN = {401: OpenApiResponse(ErrorSerializer, description="No valid token or session")}
NOT_STAFF = {
    **NOT_LOGGED_IN,
    403: OpenApiResponse(ErrorSerializer, description="Not staff (or CSRF check failed)"),
}


class MessagePagination(CursorPagination):
    """Newest first, 50 a page; ``next`` and ``previous`` are links with an opaque cursor."""

    ordering = "-created_at"
    page_size = 50


class RoomPagination(PageNumberPagination):
    """50 rooms a page (``?page=2``...); ``count``, ``next``, ``previous``, ``results``."""

    page_size = 50


@extend_schema_view(
    get=extend_schema(
        operation_id="rooms_list",
        responses={200: RoomSerializer(many=True), **NOT_LOGGED_IN},
    )
)
class RoomListView(generics.ListAPIView[Room]):
    """The stored rooms, most recently active first, 50 a page, with each one's message count
    and how many users are in it now (asked of every Chat node for the page's rooms only)."""

    permission_classes = (IsAuthenticated,)
    serializer_class = RoomSerializer
    pagination_class = RoomPagination

    def get_queryset(self) -> QuerySet[Room]:
        return selectors.room_list()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        rooms = selectors.rooms_described(page if page is not None else [])
        return self.get_paginated_response(self.get_serializer(rooms, many=True).data)


@extend_schema_view(
    get=extend_schema(
        operation_id="rooms_messages_list",
        responses={200: MessageSerializer(many=True), **NOT_LOGGED_IN},
    )
)
class RoomMessagesView(generics.ListAPIView[Message]):
    """A room's history, newest first, in pages of 50 (an unknown room has none)."""

    permission_classes = (IsAuthenticated,)
    serializer_class = MessageSerializer
    pagination_class = MessagePagination

    def get_queryset(self) -> QuerySet[Message]:
        return selectors.room_messages(self.kwargs["name"])


class CallView(APIView):
    """Call a module's ``HD_`` handler as the MQTT topic ``Module/HD_handler/<msgid>`` does,
    as the logged-in user; the reply is mqant's envelope, errors included (HTTP 200)."""

    permission_classes = (IsAuthenticated,)
    parser_classes = (StrictJSONParser,)

    @extend_schema(
        operation_id="call",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: EnvelopeSerializer,
            400: OpenApiResponse(ErrorSerializer, description="The body is not a JSON object"),
            **NOT_LOGGED_IN,
            403: OpenApiResponse(ErrorSerializer, description="CSRF check failed (browsers)"),
        },
    )
    def post(self, request: Request, module: str, handler: str) -> Response | HttpResponse:
        body: Any = request.data
        if not isinstance(body, dict):
            raise exceptions.ParseError(f"Expected a JSON object, got {type(body).__name__}")
        reply = async_to_sync(services.handler_call)(
            user_id=request.user.get_username(),
            ip=BaseThrottle().get_ident(request),
            module=module,
            handler=handler,
            body=dict(body),
        )
        if reply.raw is not None:  # the handler's bytes, sent as they are (as the gate does)
            return HttpResponse(reply.raw, content_type="application/octet-stream")
        return Response(reply.envelope)


class LiveConnectionPagination(CursorPagination):
    """Newest first, 100 a page; a cursor, since connections come and go between pages."""

    ordering = ("-connected_at", "session_id")
    page_size = 100


@extend_schema_view(
    get=extend_schema(
        operation_id="staff_sessions_list",
        responses={200: LiveConnectionSerializer(many=True), **NOT_STAFF},
    )
)
class StaffSessionListView(generics.ListAPIView[LiveConnection]):
    """The live connections of every gate that is alive, newest first, 100 a page."""

    permission_classes = (IsAdminUser,)
    serializer_class = LiveConnectionSerializer
    pagination_class = LiveConnectionPagination

    def get_queryset(self) -> QuerySet[LiveConnection]:
        return selectors.live_connections()


class StaffKickView(APIView):
    """Close a live connection; its gate closes it shortly after the reply."""

    permission_classes = (IsAdminUser,)

    @extend_schema(
        operation_id="staff_sessions_kick",
        request=None,
        responses={
            202: None,
            404: OpenApiResponse(ErrorSerializer, description="No live connection by that id"),
            **NOT_STAFF,
        },
    )
    def post(self, request: Request, session_id: str) -> Response:
        connection = selectors.live_connection(session_id)
        if connection is None:
            raise Http404("No live connection by that id.")
        services.connection_kick(connection=connection)
        return Response(status=status.HTTP_202_ACCEPTED)


class StaffBroadcastView(APIView):
    """Send a system message to a room's members, on every gate, as ``Chat/OnChat``."""

    permission_classes = (IsAdminUser,)

    @extend_schema(
        operation_id="staff_rooms_broadcast",
        request=BroadcastSerializer,
        responses={
            200: ChatEventSerializer,
            400: OpenApiResponse(description="Field errors: {field: [messages]}"),
            **NOT_STAFF,
        },
    )
    def post(self, request: Request, name: str) -> Response:
        serializer = BroadcastSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = services.room_broadcast(room_name=name, text=serializer.validated_data["text"])
        return Response(ChatEventSerializer(event).data)
