"""The OpenAPI schema is valid and documents the endpoints; Swagger UI needs no internet."""

import re

import pytest
from django.core.management import call_command
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

AUTH_PATHS = {"/api/auth/register/", "/api/auth/login/", "/api/auth/logout/", "/api/auth/me/"}
CHAT_OPERATIONS = {
    ("/api/rooms/", "get"),
    ("/api/rooms/{name}/messages/", "get"),
    ("/api/call/{module}/{handler}", "post"),
    ("/api/staff/sessions/", "get"),
    ("/api/staff/sessions/{session_id}/kick/", "post"),
    ("/api/staff/rooms/{name}/broadcast/", "post"),
}


def test_schema_generates_without_warnings_and_validates(tmp_path):
    # --fail-on-warn: a view the generator cannot describe fails here, not in a reader's hands.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))


def test_served_schema_is_valid_and_describes_the_auth_endpoints():
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    assert set(schema["paths"]) >= AUTH_PATHS
    assert set(schema["paths"]["/api/auth/login/"]["post"]["responses"]) == {
        "200", "400", "403", "429", "503"
    }  # fmt: skip
    schemes = schema["components"]["securitySchemes"]
    assert {"tokenAuth", "cookieAuth"} <= set(schemes)


def test_schema_describes_the_chat_endpoints():
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    described = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert described >= CHAT_OPERATIONS
    history = schema["paths"]["/api/rooms/{name}/messages/"]["get"]
    assert history["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaginatedMessageList"
    }
    assert set(schema["components"]["schemas"]["Message"]["properties"]) == {"from", "msg", "time"}
    call = schema["paths"]["/api/call/{module}/{handler}"]["post"]
    assert call["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Envelope"
    }


def test_swagger_ui_loads_only_files_of_this_server():
    client = APIClient()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by this server"
        response = client.get(asset)
        assert response.status_code == 200, asset
        response.close()  # a file WhiteNoise opened
    assert "//cdn" not in html
    assert "https://" not in html.replace("https://swagger.io", "")
