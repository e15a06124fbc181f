"""The answer to an HTTP request that failed because a dependency is down: 503 with a short
text, never a 500 page (``handler500`` in the project's URLconf)."""

import json
import sys

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from mqant import dependencies

RETRY_AFTER_SECONDS = 5


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500, called while the exception is handled: a dependency's failure
    is a 503 (JSON for the API, text otherwise); any other error Django's own 500 page."""
    unavailable = dependencies.unavailable_text(sys.exc_info()[1])
    if unavailable is None:
        return defaults.server_error(request)
    text = f"{unavailable}; try again in a moment."
    if request.path.startswith("/api/"):
        response = HttpResponse(
            json.dumps({"detail": text}), status=503, content_type="application/json"
        )
    else:
        response = HttpResponse(text + "\n", status=503, content_type="text/plain")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
