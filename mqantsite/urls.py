"""URL routes: the admin for now; the MQTT endpoint is a WebSocket route in asgi.py."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
