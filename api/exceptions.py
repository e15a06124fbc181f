"""The REST API's answers to exceptions: DRF's, and 503 with a short JSON body when a
dependency (the database, Redis) is down, instead of a 500."""

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from mqant import dependencies

RETRY_AFTER_SECONDS = 5


def handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: a dependency's failure is a 503 the client may retry."""
    unavailable = dependencies.unavailable_text(exc)
    if unavailable is not None:
        return Response(
            {"detail": f"{unavailable}; try again in a moment."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return exception_handler(exc, context)
