"""The REST API's JSON parser: every malformed body is a 400, never a 500.

DRF's parser turns a ValueError into a 400 but lets a RecursionError through (a body of
200,000 ``[`` was an HTTP 500, and with DEBUG on Django's technical page), and it accepts
lone surrogates, which then fail in the database write. ``mqant.jsontext`` refuses both.
"""

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from mqant import jsontext


class StrictJSONParser(JSONParser):
    """JSON bodies through ``mqant.jsontext.loads``; any failure is a ParseError (400)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            raise ParseError("JSON parse error - an empty body")
        payload = stream.read(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
        if len(payload) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise ParseError("JSON parse error - the body is too large")
        try:
            return jsontext.loads(payload)
        except ValueError as err:
            raise ParseError(f"JSON parse error - {err}") from None
