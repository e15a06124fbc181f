"""The terminal client's merge of a rejoin's history with what it already printed."""

import importlib.util

import pytest

from tests.e2e.server import ROOT


def load_client():
    spec = importlib.util.spec_from_file_location(
        "mqtt_chat_client", ROOT / "client" / "mqtt_chat_client.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = load_client()


def said(*texts: str) -> list[dict[str, object]]:
    return [{"from": "bob", "msg": text, "time": 1.0} for text in texts]


def seen(*texts: str) -> list[tuple[str, str]]:
    return [("bob", text) for text in texts]


@pytest.mark.parametrize(
    ("shown", "history", "new"),
    [
        ([], ["a", "b"], ["a", "b"]),  # a first join: everything
        (["a", "b"], ["a", "b"], []),  # nothing missed
        (["a", "b"], ["a", "b", "c", "d"], ["c", "d"]),  # missed while away
        (["a", "b", "c"], ["b", "c", "d"], ["d"]),  # the history lost its oldest
        (["a", "b"], ["x"], ["x"]),  # a room started again (server restart)
        (["a", "a"], ["a", "a", "a"], []),  # equal lines cannot be told apart: taken as seen
    ],
)
def test_unseen(shown, history, new):
    assert client.unseen(seen(*shown), said(*history)) == said(*new)


@pytest.mark.parametrize(
    ("history", "pushed", "count"),
    [
        (["a", "b", "c"], ["b", "c", "d"], 2),  # b, c pushed and in the snapshot
        (["a", "b"], ["c"], 0),  # pushed after the snapshot
        ([], ["c"], 0),
    ],
)
def test_already_in(history, pushed, count):
    assert client.already_in(said(*history), said(*pushed)) == count
