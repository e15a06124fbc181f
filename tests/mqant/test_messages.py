"""Typed messages checked alone: nesting is bounded, every value is looked at once."""

from typing import NotRequired, TypedDict

import pytest

from mqant.messages import MAX_DEPTH, Invalid, compile_message


class Tree(TypedDict):
    name: str
    child: NotRequired["Tree"]
    scores: NotRequired[dict[str, int]]


def nested(levels: int) -> dict[str, object]:
    tree: dict[str, object] = {"name": "leaf"}
    for _ in range(levels):
        tree = {"name": "node", "child": tree}
    return tree


def test_a_type_that_contains_itself_is_checked_to_a_bounded_depth():
    check = compile_message(Tree)
    assert check(nested(MAX_DEPTH - 1))["name"] == "node"
    with pytest.raises(Invalid) as refused:
        check(nested(10_000))  # far deeper than Python's own recursion limit
    where = "msg" + ".child" * MAX_DEPTH
    assert refused.value.text() == f"{where}: nested more than {MAX_DEPTH} deep"


def test_an_object_of_values_names_the_key_at_fault():
    with pytest.raises(Invalid) as refused:
        compile_message(Tree)({"name": "n", "scores": {"ann": 1, 'b"o': "x"}})
    assert refused.value.text() == 'msg.scores["b\\"o"]: an integer is required, got a string'


def test_a_wide_payload_is_checked_in_one_pass():
    check = compile_message(Tree)
    scores = {f"user{n}": n for n in range(100_000)}
    assert check({"name": "n", "scores": scores})["scores"] == scores


def test_an_object_key_that_is_not_a_string_is_refused_when_compiled():
    class Bad(TypedDict):
        by_number: dict[int, str]

    with pytest.raises(TypeError, match=r"An object's keys are strings"):
        compile_message(Bad)
