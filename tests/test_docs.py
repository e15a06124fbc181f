"""The docs stay true as the code moves: the module guide names every public call, and the
architecture page names only files that exist."""

import inspect
import re
from pathlib import Path

import pytest

import mqant
from mqant import Session, config, gates, groups, runtime, tables

ROOT = Path(__file__).resolve().parent.parent
MODULES_MD = (ROOT / "docs" / "modules.md").read_text()
ARCHITECTURE_MD = (ROOT / "docs" / "architecture.md").read_text()

# A relative path in backticks: segments of letters, digits, "_", "." and "-", ending with "/"
# (a directory) or a file name's extension. Topics (`Chat/HD_Say`) and dotted names are not.
PATH = re.compile(
    r"`((?:[\w.-]+/)+|(?:[\w.-]+/)*[\w-]+\.(?:py|md|toml|txt|json|cfg|js|html|py-tpl))`"
)

# What a module author calls beyond mqant's own names, by the object that has it.
SUBMODULE_CALLS: dict[object, list[str]] = {
    groups: ["add", "discard", "send", "send_to_everyone", "group_name"],
    gates: ["live_sessions", "at_start_and_settled"],
    gates.Census: ["in_group", "answered_for", "unheard_by"],
    config: ["process_id", "set_process_id", "load", "gate_settings"],
    runtime: ["start", "stop", "get", "current"],
    runtime.Runtime: ["spawn"],
    tables: ["Room", "event", "Phases", "Phase", "ManualClock"],
    tables.Room: ["create", "usable_table", "get", "table_for", "put", "call", "session_closed"],
    tables.Table: [
        "register",
        "put_queue",
        "call",
        "after",
        "join",
        "leave",
        "player_of",
        "send",
        "notify",
        "flush",
        "finish",
        "update",
        "on_idle",
        "on_join",
        "on_leave",
        "on_disconnect",
        "on_reconnect",
        "usable",
    ],
    tables.Phases: ["go", "pause", "resume", "stop", "remaining"],
}
CALLS = [(owner, name) for owner, names in SUBMODULE_CALLS.items() for name in names]


def session_methods() -> list[str]:
    return [
        name
        for name, member in inspect.getmembers(Session)
        if not name.startswith("_") and callable(member)
    ]


@pytest.mark.parametrize("name", mqant.__all__)
def test_the_module_guide_names_each_public_name(name: str) -> None:
    assert re.search(rf"\b{re.escape(name)}\b", MODULES_MD), f"docs/modules.md lacks {name}"


def test_session_has_public_methods() -> None:
    assert {"bind", "send", "is_connect"} <= set(session_methods())


@pytest.mark.parametrize("name", session_methods())
def test_the_module_guide_shows_each_session_method_called(name: str) -> None:
    assert f".{name}(" in MODULES_MD, f"docs/modules.md shows no call of Session.{name}"


@pytest.mark.parametrize(("owner", "name"), CALLS)
def test_the_module_guide_shows_each_submodule_call(owner: object, name: str) -> None:
    assert callable(getattr(owner, name)), f"{owner} has no {name}"
    assert f"{name}(" in MODULES_MD, f"docs/modules.md shows no call of {name}"


def test_the_architecture_names_files() -> None:
    assert len(PATH.findall(ARCHITECTURE_MD)) > 50


@pytest.mark.parametrize("path", sorted(set(PATH.findall(ARCHITECTURE_MD))))
def test_each_path_in_the_architecture_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"


def test_the_readme_links_both() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "(docs/architecture.md)" in readme
    assert "(docs/modules.md)" in readme
