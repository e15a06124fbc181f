"""The deployment: which modules each process runs, read from mqant's ``server.conf``.

The format is mqant's ``server.json``: JSON in which a line whose first non-blank characters
are ``//`` is a comment::

    {
      "Settings": {"AnyKey": "read with load().settings"},
      "Module": {
        "Gate":  [{"Id": "Gate001", "ProcessID": "gate1", "Settings": {"TCPAddr": ":3563"}}],
        // the modules run by `manage.py runmodules --pid modules1`
        "Chat":  [{"Id": "Chat001", "ProcessID": "modules1", "Settings": {"HistorySize": 50}}],
        "Login": [{"Id": "Login001", "ProcessID": "modules1"}]
      }
    }

A process runs the entries whose ``ProcessID`` is its own (``process_id()``). As in mqant, an
``Id`` is unique across the file and a module type has at most one entry per ``ProcessID``;
other keys of an entry (``Host``, ``Rabbitmq``...) and other sections (``Rpc``, ``Mqtt``,
``Log``...) are accepted and ignored. Types no registered module has are skipped, except
``Gate``, whose entry configures the gate of that process (``gate_settings()``).

Where the deployment comes from, first found: the file named by the ``MQANT_CONFIG``
environment variable; ``settings.MQANT["CONFIG"]``, a path or the same structure as a dict;
else the built-in one, everything in one process: a Gate and every registered module type
(or those of ``MQANT["MODULES"]``), each once on ``ProcessID`` ``"development"``, with the
settings of ``MQANT["MODULE_SETTINGS"]``.
"""

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from mqant import conf
from mqant.registry import module_classes

CONFIG_ENV = "MQANT_CONFIG"
PROCESS_ID_ENV = "MQANT_PROCESS_ID"
DEFAULT_PROCESS_ID = "development"
GATE = "Gate"

_process_id: str | None = None


@dataclass(frozen=True, slots=True)
class ModuleEntry:
    """One entry of a module type's list: an instance to run on process ``process_id``."""

    module_type: str
    id: str
    process_id: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """A validated deployment. ``modules`` keeps the file's order, which is the start order."""

    source: str
    modules: dict[str, list[ModuleEntry]]
    settings: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def for_process(self, process_id: str) -> list[ModuleEntry]:
        """The entries process ``process_id`` runs, in the file's order."""
        return [
            entry
            for entries in self.modules.values()
            for entry in entries
            if entry.process_id == process_id
        ]

    def entry(self, module_type: str, process_id: str) -> ModuleEntry | None:
        """The entry of ``module_type`` for ``process_id``, if there is one."""
        for entry in self.modules.get(module_type, []):
            if entry.process_id == process_id:
                return entry
        return None

    def process_ids(self) -> list[str]:
        """Every ProcessID the deployment names, in the order they first appear."""
        return list(dict.fromkeys(e.process_id for es in self.modules.values() for e in es))


def set_process_id(process_id: str | None) -> None:
    """Name this process (``runmodules --pid``); None falls back to the environment."""
    global _process_id
    _process_id = process_id


def process_id() -> str:
    """This process's id: as set by ``set_process_id``, else ``MQANT_PROCESS_ID``, else
    ``"development"`` (mqant's default)."""
    return _process_id or os.environ.get(PROCESS_ID_ENV) or DEFAULT_PROCESS_ID


def load() -> ServerConfig:
    """The deployment, from wherever it is configured (see the module's docstring).

    Raises ImproperlyConfigured with the file and the entry at fault when it is invalid.
    """
    path = os.environ.get(CONFIG_ENV)
    if path:
        return read(path)
    configured = conf.get("CONFIG")
    if isinstance(configured, str | Path):
        return read(configured)
    if isinstance(configured, dict):
        return parse(configured, source='settings.MQANT["CONFIG"]')
    if configured is not None:
        raise ImproperlyConfigured(
            f'settings.MQANT["CONFIG"] must be a path or a dict, got {type(configured).__name__}'
        )
    return builtin()


def gate_settings() -> dict[str, Any] | None:
    """The ``Settings`` of this process's ``Gate`` entry (``TCPAddr``, ``WSAddr``, ``TLS``,
    ``CertFile``, ``KeyFile``...), ``{}`` for an entry without any; None when the deployment
    gives this process no Gate."""
    entry = load().entry(GATE, process_id())
    return None if entry is None else dict(entry.settings)


def read(path: str | os.PathLike[str]) -> ServerConfig:
    """Read and validate a server.conf file."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as err:
        raise ImproperlyConfigured(f"Cannot read the mqant config {source}: {err}") from err
    return parse(loads(text, source), source=source)


def loads(text: str, source: str = "<string>") -> Any:
    """Parse server.conf text: JSON whose ``//`` comment lines are blanked first (so that
    error line numbers are the file's own)."""
    lines = [
        line[len(line.rstrip("\r\n")) :] if line.lstrip(" \t").startswith("//") else line
        for line in text.splitlines(keepends=True)
    ]
    try:
        return json.loads("".join(lines))
    except ValueError as err:
        raise ImproperlyConfigured(f"{source} is not valid JSON: {err}") from err


def parse(data: Any, source: str) -> ServerConfig:
    """Validate server.conf ``data`` (already parsed JSON) into a ServerConfig."""
    if not isinstance(data, dict):
        raise _error(source, "the top level must be a JSON object")
    modules = data.get("Module", {})
    if not isinstance(modules, dict):
        raise _error(source, '"Module" must be an object: module type -> list of entries')
    settings = data.get("Settings") or {}
    if not isinstance(settings, dict):
        raise _error(source, '"Settings" must be an object')
    parsed = {
        module_type: _entries(source, module_type, entries)
        for module_type, entries in modules.items()
    }
    _check_unique(source, parsed)
    return ServerConfig(source=source, modules=parsed, settings=settings, raw=data)


def builtin() -> ServerConfig:
    """Everything in one process: a Gate and each module type once, on ``"development"``."""
    wanted: Iterable[str] | None = conf.get("MODULES")
    types = sorted(module_classes()) if wanted is None else list(wanted)
    module_settings: dict[str, dict[str, Any]] = conf.get("MODULE_SETTINGS")
    modules = {
        module_type: [
            ModuleEntry(
                module_type,
                f"{module_type}001",
                DEFAULT_PROCESS_ID,
                dict(module_settings.get(module_type, {})),
            )
        ]
        for module_type in [GATE, *(t for t in types if t != GATE)]
    }
    return ServerConfig(source="the built-in deployment", modules=modules)


def _entries(source: str, module_type: str, entries: Any) -> list[ModuleEntry]:
    if not module_type or "/" in module_type or "@" in module_type:
        raise _error(source, f"module type {module_type!r} must be a name without '/' or '@'")
    if not isinstance(entries, list):
        raise _error(source, f'"Module.{module_type}" must be a list of entries')
    return [
        _entry(source, f"Module.{module_type}[{i}]", module_type, e) for i, e in enumerate(entries)
    ]


def _entry(source: str, where: str, module_type: str, entry: Any) -> ModuleEntry:
    if not isinstance(entry, dict):
        raise _error(source, f"{where} must be an object with Id and ProcessID")
    module_id, process_id_, settings = (
        entry.get("Id"),
        entry.get("ProcessID"),
        entry.get("Settings"),
    )
    if not isinstance(module_id, str) or not module_id:
        raise _error(source, f"{where}.Id must be a non-empty string, got {module_id!r}")
    if not isinstance(process_id_, str) or not process_id_:
        raise _error(source, f"{where}.ProcessID must be a non-empty string, got {process_id_!r}")
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise _error(source, f"{where}.Settings must be an object, got {type(settings).__name__}")
    return ModuleEntry(module_type, module_id, process_id_, settings)


def _check_unique(source: str, modules: dict[str, list[ModuleEntry]]) -> None:
    """mqant's rules: an Id is used once in the whole file; a module type has at most one
    entry per ProcessID."""
    ids: dict[str, str] = {}
    for module_type, entries in modules.items():
        by_process: dict[str, str] = {}
        for i, entry in enumerate(entries):
            where = f"Module.{module_type}[{i}]"
            first = ids.setdefault(entry.id, where)
            if first != where:
                raise _error(
                    source,
                    f"Id {entry.id!r} is used twice, by {first} and {where}; "
                    "an Id must be unique in the whole file",
                )
            other = by_process.setdefault(entry.process_id, where)
            if other != where:
                raise _error(
                    source,
                    f"{other} and {where} both run on ProcessID {entry.process_id!r}; "
                    "a process runs at most one instance of a module type",
                )


def _error(source: str, message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Invalid mqant config {source}: {message}")
