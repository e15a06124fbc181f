"""POST /api/call/<Module>/<HD_handler>: a handler called over HTTP as the logged-in user, with
the gate's checks and mqant's reply envelope."""

import json
import re
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from chat.models import Message
from mqant import call
from tests.api.fakes import FakeConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def ann(make_client):
    return await sync_to_async(make_client)("ann")


async def post(client: APIClient, path: str, body=None):
    return await sync_to_async(client.post)(path, {} if body is None else body, format="json")


async def test_a_handler_answers_in_the_envelope(mqant_started, ann):
    response = await post(ann, "/api/call/HelloWorld/HD_Say", {"say": "hi"})
    assert response.status_code == 200
    reply = response.json()
    assert reply["Error"] == ""
    assert reply["Result"] == "you say : hi"
    assert re.fullmatch(r"[0-9a-f]{32}", reply["Trace"])


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/api/call/Nope/HD_X", "Service(type:Nope) not found"),
        ("/api/call/HelloWorld/Say", "Method(Say) must begin with 'HD_'"),
        ("/api/call/HelloWorld/HD_Nope", "Remote function(HD_Nope) not found"),
        ("/api/call/HelloWorld/HD_Say", "say cannot be nil"),
    ],
)
async def test_errors_are_replied_as_the_gate_does(mqant_started, ann, path, error):
    response = await post(ann, path)
    assert response.status_code == 200
    assert response.json()["Error"] == error
    assert response.json()["Result"] is None


async def test_session_operations_fail_at_once_without_a_connection(mqant_started, ann):
    started = time.monotonic()
    response = await post(ann, "/api/call/Login/HD_Logout")
    assert response.json()["Error"] == "The session has no live connection"
    assert time.monotonic() - started < 2  # not the RPC deadline (10 s)


async def test_chat_say_reaches_the_room_as_the_user(mqant_started, ann):
    connection = await FakeConnection.open("ann")  # ann's live connection, in room "r"
    try:
        await call("Chat", "HD_JoinChat", connection.session, {"roomName": "r"})
        response = await post(
            ann, "/api/call/Chat/HD_Say", {"roomName": "r", "content": "via http"}
        )
        pushed = await connection.fanout()
    finally:
        connection.close()
    assert response.json()["Result"] == {"say": "say success"}
    assert pushed["topic"] == "Chat/OnChat"
    assert json.loads(pushed["payload"]) == {
        "roomName": "r", "from": "ann", "target": "*", "msg": "via http"
    }  # fmt: skip
    assert await Message.objects.filter(room__name="r", sender="ann").acount() == 1


async def test_chat_say_from_a_user_not_in_the_room(mqant_started, ann):
    connection = await FakeConnection.open("bob")
    try:
        await call("Chat", "HD_JoinChat", connection.session, {"roomName": "r"})
        response = await post(ann, "/api/call/Chat/HD_Say", {"roomName": "r", "content": "x"})
    finally:
        connection.close()
    assert response.json()["Error"] == "You haven't been in the room yet"


async def test_the_body_must_be_a_json_object(mqant_started, ann):
    response = await post(ann, "/api/call/HelloWorld/HD_Say", ["hi"])
    assert response.status_code == 400
    assert response.json() == {"detail": "Expected a JSON object, got list"}


async def test_guests_get_401(mqant_started):
    assert (await post(APIClient(), "/api/call/HelloWorld/HD_Say")).status_code == 401


async def test_a_browser_session_needs_the_csrf_token(mqant_started):
    def logged_in_browser() -> APIClient:
        get_user_model().objects.create_user(username="cat", password="correct-horse-42")
        browser = APIClient(enforce_csrf_checks=True)
        browser.login(username="cat", password="correct-horse-42")
        return browser

    browser = await sync_to_async(logged_in_browser)()
    response = await post(browser, "/api/call/HelloWorld/HD_Say", {"say": "hi"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


async def test_joining_over_http_leaves_the_live_membership_alone(mqant_started, ann):
    connection = await FakeConnection.open("ann")
    try:
        await call("Chat", "HD_JoinChat", connection.session, {"roomName": "kept"})
        joined = await post(ann, "/api/call/Chat/HD_JoinChat", {"roomName": "kept"})
        assert joined.json()["Error"] == "The session has no live connection"
        left = await post(ann, "/api/call/Chat/HD_LeaveChat", {"roomName": "kept"})
        assert left.json()["Error"] == ""  # the user leaves; no traceback for the missing link
        await call("Chat", "HD_JoinChat", connection.session, {"roomName": "kept"})
        said = await post(ann, "/api/call/Chat/HD_Say", {"roomName": "kept", "content": "hi"})
        pushed = await connection.fanout()
    finally:
        connection.close()
    assert said.json()["Result"] == {"say": "say success"}
    assert json.loads(pushed["payload"])["msg"] == "hi"
