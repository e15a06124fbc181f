"""Routes under ``/api/``: the account endpoints, the chat's rooms, handler calls and staff
actions, the OpenAPI schema and its Swagger UI. Room names may contain ``/``."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api import chat_views, views

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="api-register"),
    path("auth/login/", views.LoginView.as_view(), name="api-login"),
    path("auth/logout/", views.LogoutView.as_view(), name="api-logout"),
    path("auth/me/", views.MeView.as_view(), name="api-me"),
    path("rooms/", chat_views.RoomListView.as_view(), name="api-rooms"),
    path(
        "rooms/<path:name>/messages/",
        chat_views.RoomMessagesView.as_view(),
        name="api-room-messages",
    ),
    path("call/<str:module>/<str:handler>", chat_views.CallView.as_view(), name="api-call"),
    path("staff/sessions/", chat_views.StaffSessionListView.as_view(), name="api-staff-sessions"),
    path(
        "staff/sessions/<str:session_id>/kick/",
        chat_views.StaffKickView.as_view(),
        name="api-staff-kick",
    ),
    path(
        "staff/rooms/<path:name>/broadcast/",
        chat_views.StaffBroadcastView.as_view(),
        name="api-staff-broadcast",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
