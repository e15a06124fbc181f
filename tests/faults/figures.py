"""What each fault test measured, printed as one table at the end of the run."""

from collections import Counter
from dataclasses import dataclass, field

COMMAND = ".venv/bin/pytest -m faults -p no:randomly -s"


@dataclass
class Outcome:
    """One fault's figures; ``problems`` are the requirements it broke, in words."""

    fault: str
    recovery: float | None = None  # seconds from the restore until every member says again
    longest: float = 0.0  # the longest request→answer during the fault, the bound if none
    past_bound: int = 0  # requests unanswered past the bound
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    log_lines: dict[str, int] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


OUTCOMES: list[Outcome] = []


def error_kind(error: str) -> str:
    """A short name for an error text a client got."""
    if error.startswith("Service(type:"):
        return "not found"
    if error.endswith(" unavailable"):
        return error
    if error.endswith(" stopped"):
        return "node stopped"
    return error if len(error) <= 40 else error[:37] + "..."


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary() -> list[str]:
    """The table: one line per fault, then what else it measured and what it broke."""
    if not OUTCOMES:
        return []
    lines = [
        "",
        f"fault suite ({COMMAND}); seconds; bound = unanswered past this",
        f"{'fault':<18} {'recovery':>8} {'longest':>8} {'past':>5} {'asked':>6}  "
        "errors by kind / log lines per process",
    ]
    for o in OUTCOMES:
        errors = ", ".join(f"{k}: {n}" for k, n in o.errors.most_common()) or "none"
        logs = ", ".join(f"{k} {n}" for k, n in o.log_lines.items())
        lines.append(
            f"{o.fault:<18} {_seconds(o.recovery):>8} {o.longest:>8.2f} {o.past_bound:>5} "
            f"{o.requests:>6}  errors: {errors}; log lines: {logs}"
        )
        for key, value in o.extra.items():
            lines.append(f"{'':<18} {key}: {value}")
        for problem in o.problems:
            lines.append(f"{'':<18} FAILED: {problem}")
    return lines
