"""URL routes: the admin, the REST API, the chat and Hitball pages; the MQTT endpoint is a
WebSocket route in asgi.py."""

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.generic import RedirectView

from mqant import dashboard
from mqantsite.views import ChatPage, HitballPage

# A request that fails because the database or Redis is down: 503, not a 500 page.
handler500 = "mqant.http.server_error"

urlpatterns = [
    # The live dashboard, staff only, before the admin's own catch-all.
    path("admin/dashboard/", include(dashboard.urls(admin.site))),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    # The chat page is a template, not a static file: it sets the CSRF cookie its REST calls
    # need, names its assets through {% static %} and the gate's own WebSocket port.
    path("mqant/index.html", ensure_csrf_cookie(ChatPage.as_view()), name="chat-page"),
    path("mqant/hitball.html", HitballPage.as_view(), name="hitball-page"),
    path("mqant/", RedirectView.as_view(pattern_name="chat-page")),
    # The site's root leads to the chat page, where a newcomer expects something.
    path("", RedirectView.as_view(pattern_name="chat-page")),
]
