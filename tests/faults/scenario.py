"""A fault while the members chat, and what must hold after it without any client action:
messages acknowledged were delivered, every request was answered within the bound, the room,
the online count, the OnLeave pushes and the live connections are right, nothing died that
was not killed, and the logs stayed short."""

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.faults.deployment import BOUND, ROOM, Deployment, wait_until
from tests.faults.figures import OUTCOMES, Outcome, error_kind
from tests.faults.load import Member

BASELINE = 1.5  # seconds of chatting before the fault
OUTAGE = 6.0  # seconds a fault lasts
LEAVE_AFTER = 1.0  # seconds into the outage when one member quits for good
RECOVERY_WAIT = 25.0  # seconds after the restore a recovery may take before it is a failure
LEAVE_WAIT = 12.0  # seconds after the restore an OnLeave may take
SETTLE = 1.5  # seconds for the last pushes to arrive
LOG_LINES = 50  # lines one process may log per outage
REPEATS = 3  # warnings of one kind one process may log per outage


def log_lines(workdir: Path) -> dict[Path, int]:
    """Lines in every gate and module process log under ``workdir``."""
    paths = [*workdir.glob("gate*/daphne-*.log"), *workdir.glob("runmodules-*.log")]
    return {path: path.read_bytes().count(b"\n") for path in paths}


def process_of(path: Path) -> str:
    return path.parent.name.split("-")[0] if path.name.startswith("daphne") else "modules1"


def logged_since(workdir: Path, marks: dict[Path, int]) -> tuple[dict[str, int], list[str]]:
    """Lines each process logged since ``marks``, and the problems among them: tracebacks,
    and a kind of warning (its text, numbers and ids aside) logged more than REPEATS times,
    which an outage twice as long would log twice as often."""
    counts: dict[str, int] = {}
    problems = []
    for path in sorted(log_lines(workdir)):
        new = path.read_text(errors="replace").splitlines()[marks.get(path, 0) :]
        name = process_of(path)
        counts[name] = counts.get(name, 0) + len(new)
        problems += [f"{name}: {line}" for line in new if "Traceback" in line]
        warnings = [line for line in new if re.match(r"\S+ \S+ (WARNING|ERROR) ", line)]
        kinds = Counter(re.sub(r"[0-9a-f]{6,}|\d+", "#", w.split(" ", 2)[-1]) for w in warnings)
        problems += [f"{name}: {n} x {kind}" for kind, n in kinds.items() if n > REPEATS]
    return counts, problems


def heal(dep: Deployment, outcome: Outcome) -> None:
    """Bring the deployment back to health before a fault, whatever the last one left: dead
    processes started, members that cannot say replaced, then three members per gate."""
    if dep.redis.process is None or dep.redis.process.poll() is not None:
        dep.redis.start()
    dep.proxy.resume()
    for index, gate in enumerate(list(dep.gates)):
        if not gate.alive():
            dep.start_gate(index)
            outcome.extra["healed"] = f"gate{index + 1} restarted"
    if not dep.processes()["modules1"]:
        dep.modules.start()
        outcome.extra["healed"] = "modules1 restarted"
    dep.ready()
    replaced, rejoined = [], []
    for member in list(dep.members):
        if member.closed or not dep.gates[member.gate].alive():
            ok = False
        elif not (ok := _says(member, within=3.0) is not None):
            member.request("Chat/HD_JoinChat", {"roomName": ROOM}, BOUND)
            ok = _says(member, within=3.0) is not None
            rejoined += [member.name] if ok else []
        if not ok:
            member.close()
            dep.members.remove(member)
            replaced.append(member.name)
    for _ in range(2):  # a member that can say at once may fail just after (a late reap)
        dep.top_up()
        for member in [m for m in dep.members if _says(m, within=3.0) is None]:
            replaced.append(f"{member.name} ({member.says()[-1].error})")
            dep.leave(member)
    if replaced or rejoined:
        outcome.extra["healed"] = f"members replaced {replaced}, joined again {rejoined}"
    dep.top_up()
    for member in dep.members:
        if _says(member) is None:
            error = member.says()[-1].error
            raise AssertionError(f"unhealthy before the fault: {member.name} gets {error!r}")


def _says(member: Member, within: float = 10.0) -> float | None:
    """Seconds until a say of ``member`` succeeds, None if none does within ``within`` s."""
    return wait_until(lambda: member.say(ROOM, f"{member.name} is here", BOUND).error == "", within)


def recovered(members: Iterable[Member], since: float) -> float | None:
    """Seconds from ``since`` until every member's say sent after it had succeeded."""
    firsts = []
    for member in members:
        ok = [r.answered for r in member.says() if r.sent >= since and r.error == ""]
        if not ok or ok[0] is None:
            return None
        firsts.append(ok[0] - since)
    return max(firsts, default=0.0)


def measure_requests(outcome: Outcome, members: Iterable[Member], since: float) -> None:
    """The requests sent from ``since``: the longest wait, those past the bound, the errors."""
    for member in members:
        for request in member.requests:
            if request.sent < since:
                continue
            outcome.requests += 1
            latency = request.latency(BOUND)
            outcome.longest = max(outcome.longest, latency)
            if request.answered is None or request.answered - request.sent > BOUND:
                outcome.past_bound += 1
            elif request.error:
                outcome.errors[error_kind(request.error)] += 1


def check_delivery(
    outcome: Outcome, senders: Iterable[Member], receivers: list[Member], since: float
) -> None:
    """Every acknowledged say sent from ``since`` reached every receiver (but its sender)."""
    heard = {
        r.name: {(p.body.get("from"), p.body.get("msg")) for p in r.pushed("Chat/OnChat")}
        for r in receivers
    }
    lost = []
    for sender in senders:
        for say in sender.says():
            if say.error != "" or say.answered is None or say.sent < since:
                continue
            said = (sender.name, say.body["content"])
            lost += [
                f"{said[1]}→{r.name}"
                for r in receivers
                if r is not sender and said not in heard[r.name]
            ]
    outcome.extra["acknowledged says lost"] = str(len(lost))
    outcome.check(not lost, f"acknowledged messages lost: {lost[:5]} ({len(lost)} in all)")


def leaves(member: Member, since: float) -> list[str]:
    return [p.body.get("user") for p in member.pushed("Chat/OnLeave", since)]


def check_leaves(
    outcome: Outcome,
    present: list[Member],
    left: list[str],
    since: float,
    restored: float,
    may_leave: Iterable[str] = (),
) -> None:
    """Each present member got one OnLeave for each user in ``left``; none for the others
    but ``may_leave`` (users who came back, at most one each)."""
    wait_until(
        lambda: all(set(left) <= set(leaves(m, since)) for m in present),
        max(0.0, restored + LEAVE_WAIT - time.monotonic()),
    )
    time.sleep(0.3)
    allowed = set(may_leave)
    for member in present:
        got = leaves(member, since)
        wrong = [u for u in set(got) if got.count(u) > 1 or (u not in left and u not in allowed)]
        missing = [u for u in left if u not in got]
        outcome.check(
            not wrong and not missing,
            f"{member.name}: Chat/OnLeave got {got}, expected {left}",
        )


def check_room(outcome: Outcome, dep: Deployment, gate: int) -> None:
    """A fresh client joining sees exactly the members present and everyone logged in; it
    stays as a member. What an earlier fault left wrong (``dep.left_over``) is reported as
    inherited, not blamed on this one."""
    expected = {m.name for m in dep.members}
    try:
        fresh = dep.join(gate, "websockets")
    except AssertionError as err:
        outcome.problems.append(f"a fresh client could not join: {err}")
        return
    expected.add(fresh.name)
    joined = fresh.requests[-1].result
    users = set(joined["users"])
    ghosts, inherited = users - expected, dep.left_over.get("room", set())
    outcome.check(
        not ghosts - inherited and not expected - users and joined["userCount"] == len(users),
        f"the room lists {sorted(users)} ({joined['userCount']}), expected {sorted(expected)}",
    )
    _inherit(outcome, dep, "room", ghosts)
    # a user the room still lists may still count as online too
    online, extra = joined["online"], dep.left_over.get("online", set()) | inherited
    outcome.check(
        isinstance(online, int) and len(expected) <= online <= len(expected) + len(extra),
        f"online {online} after the fault, expected {len(expected)}",
    )
    if isinstance(online, int):
        _inherit(outcome, dep, "online", {f"#{n}" for n in range(online - len(expected))})


def _inherit(outcome: Outcome, dep: Deployment, what: str, wrong: set[str]) -> None:
    if dep.left_over.get(what):
        outcome.extra[f"inherited ({what})"] = str(sorted(dep.left_over[what]))
    dep.left_over[what] = wrong


def check_live_rows(outcome: Outcome, dep: Deployment, within: float = 5.0) -> None:
    """The live-connection rows are the members' connections, one each."""
    expected = sorted(m.name for m in dep.members)
    inherited = dep.left_over.get("rows", set())
    wait_until(lambda: dep.db.live_users() == expected, within, every=0.5)
    rows = dep.db.live_users()
    extra = Counter(rows) - Counter(expected)
    missing = Counter(expected) - Counter(rows)
    outcome.check(
        not missing and set(extra) <= inherited,
        f"live-connection rows {rows}, expected {expected}",
    )
    _inherit(outcome, dep, "rows", set(extra))


def check_processes(outcome: Outcome, dep: Deployment, killed: Iterable[str] = ()) -> None:
    dead = [name for name, alive in dep.processes().items() if not alive and name not in killed]
    outcome.check(not dead, f"processes dead that were not killed: {dead}")


def check_logs(outcome: Outcome, dep: Deployment, marks: dict[Path, int]) -> None:
    outcome.log_lines, log_problems = logged_since(dep.workdir, marks)
    noisy = {name: n for name, n in outcome.log_lines.items() if n > LOG_LINES}
    outcome.check(not noisy, f"more than {LOG_LINES} log lines in the outage: {noisy}")
    outcome.check(not log_problems, f"logged per request or per try: {log_problems[:3]}")


def outage(
    dep: Deployment, fault: str, apply: Callable[[], object], restore: Callable[[], object]
) -> Outcome:
    """Chat, apply the fault for OUTAGE s (one member quits meanwhile), restore, and check.
    The outcome is recorded whatever happened; the caller asserts it has no problem."""
    outcome = Outcome(fault)
    OUTCOMES.append(outcome)
    heal(dep, outcome)
    marks = log_lines(dep.workdir)
    chatted = time.monotonic()
    for member in dep.members:
        member.start_chatting(ROOM, BOUND)
    time.sleep(BASELINE)
    present = list(dep.members)
    started = time.monotonic()
    apply()
    time.sleep(LEAVE_AFTER)
    leaver = present.pop(len(present) // 2)
    dep.leave(leaver)
    time.sleep(max(0.0, started + OUTAGE - time.monotonic()))
    restored = time.monotonic()
    restore()
    outcome.extra["restore took"] = f"{time.monotonic() - restored:.2f} s"
    wait_until(lambda: recovered(present, restored) is not None, RECOVERY_WAIT)
    outcome.recovery = recovered(present, restored)
    outcome.check(outcome.recovery is not None, f"no recovery within {RECOVERY_WAIT} s")
    time.sleep(1.0)
    for member in present:
        member.stop_chatting(BOUND + 1)
    time.sleep(SETTLE)
    measure_requests(outcome, [*present, leaver], started)
    outcome.check(
        outcome.past_bound == 0, f"{outcome.past_bound} requests unanswered past {BOUND} s"
    )
    finish(outcome, dep, present, [leaver], [leaver.name], started, restored, marks, chatted)
    return outcome


def finish(
    outcome: Outcome,
    dep: Deployment,
    present: list[Member],
    senders: list[Member],
    left: list[str],
    since: float,
    restored: float,
    marks: dict[Path, int],
    chatted: float,
    *,
    may_leave: Iterable[str] = (),
    killed: Iterable[str] = (),
) -> None:
    """The checks after the fault, each recorded as a problem when it fails."""
    check_delivery(outcome, [*present, *senders], present, chatted)
    check_leaves(outcome, present, left, since, restored, may_leave)
    check_room(outcome, dep, present[0].gate if present else 0)
    check_live_rows(outcome, dep)
    check_processes(outcome, dep, killed)
    check_logs(outcome, dep, marks)
    dropped = [m.name for m in present if any(t >= since for t in m.disconnects)]
    outcome.check(not dropped, f"connections dropped by the server: {dropped}")
