"""HTTP bodies are bounded before Django spools them to disk."""

import pytest

from mqant.asgi import BodyLimit


class Recorder:
    """An inner ASGI app that reads the whole body, as Django's handler does."""

    def __init__(self) -> None:
        self.body = b""
        self.disconnected = False

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})


def feeder(chunks):
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages[-1]["more_body"] = False

    async def receive():
        return messages.pop(0)

    return receive


@pytest.fixture
def limit(settings):
    settings.MQANT = {**settings.MQANT, "MAX_HTTP_BODY": 1000}


async def run(headers, chunks):
    inner, sent = Recorder(), []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": headers}
    await BodyLimit(inner)(scope, feeder(chunks), send)
    return inner, sent


async def test_a_declared_length_over_the_limit_is_a_413(limit):
    inner, sent = await run([(b"content-length", b"5000")], [b"x" * 5000])
    assert sent[0]["status"] == 413
    assert inner.body == b""


async def test_a_streamed_body_past_the_limit_ends_as_a_disconnect(limit):
    inner, _ = await run([(b"transfer-encoding", b"chunked")], [b"x" * 600] * 10)
    assert inner.disconnected
    assert len(inner.body) <= 1000


async def test_bodies_within_the_limit_pass(limit):
    inner, sent = await run([(b"content-length", b"900")], [b"x" * 500, b"y" * 400])
    assert inner.body == b"x" * 500 + b"y" * 400
    assert sent[0]["status"] == 200
