"""Results as a markdown report (tables, and the issue's targets checked) and PNG plots."""

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]

COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    # scenario: (heading, key, format)
    "rr": [
        ("server", "label", "{}"),
        ("clients", "clients", "{}"),
        ("msgs/s", "rate", "{:,.0f}"),
        ("p50 ms", "p50_ms", "{:.2f}"),
        ("p99 ms", "p99_ms", "{:.2f}"),
        ("server CPU µs/msg", "cpu_per_msg_us", "{:.1f}"),
        ("load tool CPU s", "client_cpu_s", "{:.1f}"),
    ],
    "fanout": [
        ("server", "label", "{}"),
        ("members", "clients", "{:,}"),
        ("messages", "messages", "{:,}"),
        ("deliveries/s", "rate", "{:,.0f}"),
        ("lost", "lost", "{:,}"),
        ("p50 ms", "p50_ms", "{:.1f}"),
        ("p99 ms", "p99_ms", "{:.1f}"),
        ("server CPU µs/delivery", "cpu_per_msg_us", "{:.1f}"),
    ],
    "idle": [
        ("server", "label", "{}"),
        ("connections", "clients", "{:,}"),
        ("alive", "alive", "{:,}"),
        ("connects/s", "connect_rate", "{:,.0f}"),
        ("server CPU ms/connect", "connect_cpu_ms", "{:.2f}"),
        ("RSS before MiB", "rss_before_mb", "{:.1f}"),
        ("RSS after MiB", "rss_after_mb", "{:.1f}"),
        ("RSS KiB/connection", "rss_per_conn_kb", "{:.1f}"),
    ],
    "rpc": [
        ("transport", "transport", "{}"),
        ("callers", "clients", "{}"),
        ("calls/s", "rate", "{:,.0f}"),
        ("p50 ms", "p50_ms", "{:.2f}"),
        ("p99 ms", "p99_ms", "{:.2f}"),
        ("calls per CPU-second", "calls_per_cpu_s", "{:,.0f}"),
        ("CPU µs/call", "cpu_per_msg_us", "{:.1f}"),
        ("Redis CPU µs/call", "redis_per_msg_us", "{:.1f}"),
    ],
}

TITLES = {
    "rr": "rr: request/reply, closed loops (`HelloWorld/HD_Say`; the references echo)",
    "fanout": "fanout: one room, one speaker, every member hears each message",
    "idle": "idle: connections that only keep alive",
    "rpc": "rpc: module-to-module calls",
}


def _cell(fmt: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def table(scenario: str, records: Iterable[Record]) -> str:
    columns = COLUMNS[scenario]
    lines = [
        "| " + " | ".join(heading for heading, _, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for r in records:
        lines.append("| " + " | ".join(_cell(f, r.get(key)) for _, key, f in columns) + " |")
    return "\n".join(lines)


def _find(records: list[Record], **match: Any) -> Record | None:
    for r in records:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def targets(records: list[Record]) -> list[tuple[str, str, str]]:
    """(target, figure reached, met?) for each of the issue's targets found in the records."""
    rows: list[tuple[str, str, str]] = []
    for asgi in ("daphne", "uvicorn"):
        for clients in (16, 64):
            ours = _find(records, scenario="rr", target="mqant", asgi=asgi, transport="ws",
                         clients=clients)  # fmt: skip
            ref = _find(records, scenario="rr", target="textbook", asgi=asgi, clients=clients)
            if ours and ref:
                a, b = ours["cpu_per_msg_us"], ref["cpu_per_msg_us"]
                rows.append((
                    f"rr, {asgi}, {clients} clients: server CPU per HD_Say round trip ≤ "
                    "textbook echo's",
                    f"{a:.1f} µs vs {b:.1f} µs ({a / b:.2f}×)",
                    "yes" if a <= b else "no",
                ))  # fmt: skip
    for asgi in ("daphne", "uvicorn"):
        ours = _find(records, scenario="fanout", target="mqant", asgi=asgi, transport="ws",
                     clients=1000)  # fmt: skip
        ref = _find(records, scenario="fanout", target="textbook", asgi=asgi, clients=1000)
        if ours and ref:
            ratio = ours["rate"] / ref["rate"]
            rows.append((
                f"fanout, {asgi}, 1,000 members: deliveries/s ≥ 4× textbook group_send, none lost",
                f"{ours['rate']:,.0f} vs {ref['rate']:,.0f} ({ratio:.1f}×), lost {ours['lost']}",
                "yes" if ratio >= 4 and ours["lost"] == 0 else "no",
            ))  # fmt: skip
    for asgi in ("daphne", "uvicorn"):
        ours = _find(records, scenario="idle", target="mqant", asgi=asgi, transport="ws")
        ref = _find(records, scenario="idle", target="textbook", asgi=asgi)
        if ours and ref:
            a, b = ours["rss_per_conn_kb"], ref["rss_per_conn_kb"]
            rows.append((
                f"idle, {asgi}: {ours['clients']:,} connections in one process, RSS per "
                "connection ≤ textbook's",
                f"{ours['alive']:,} alive; {a:.1f} KiB vs {b:.1f} KiB ({a / b:.2f}×)",
                "yes" if ours["alive"] >= 10_000 and a <= b else "no",
            ))  # fmt: skip
    rows += listener_targets(records)
    base = _find(records, scenario="rpc", transport="inprocess", clients=64)
    for layer in ("core", "pubsub"):
        redis = _find(records, scenario="rpc", transport=layer, clients=64)
        if base and redis:
            ratio = redis["calls_per_cpu_s"] / base["calls_per_cpu_s"]
            rows.append((
                f"rpc over Redis ({layer}), 64 callers: calls per CPU-second ≥ ½ in-process; "
                "p99 < 10 ms",
                f"{redis['calls_per_cpu_s']:,.0f} vs {base['calls_per_cpu_s']:,.0f} "
                f"({ratio:.2f}×); p99 {redis['p99_ms']:.1f} ms",
                "yes" if ratio >= 0.5 and redis["p99_ms"] < 10 else "no",
            ))  # fmt: skip
    return rows


# The gate's own WebSocket port is "close to" MQTT over TCP when it costs at most this much more.
CLOSE_TO_TCP = 1.25
IDLE_LISTENER_KIB = 20.0


def listener_targets(records: list[Record]) -> list[tuple[str, str, str]]:
    """The gate's own WebSocket port against MQTT over TCP, in the same daphne process."""
    rows: list[tuple[str, str, str]] = []
    for scenario, clients, unit in (("rr", 64, "msg"), ("fanout", 1000, "delivery")):
        match = {"scenario": scenario, "target": "mqant", "asgi": "daphne", "clients": clients}
        found = {t: _find(records, transport=t, **match) for t in ("ws-listener", "tcp", "ws")}
        ours, tcp, ws = found["ws-listener"], found["tcp"], found["ws"]
        if ours and tcp and ws:
            a, b, c = ours["cpu_per_msg_us"], tcp["cpu_per_msg_us"], ws["cpu_per_msg_us"]
            rows.append((
                f"{scenario}, {clients:,}: server CPU per {unit} over the gate's own WebSocket "
                f"port ≤ {CLOSE_TO_TCP}× TCP's",
                f"{a:.1f} µs vs TCP {b:.1f} µs ({a / b:.2f}×); daphne's WebSocket {c:.1f} µs",
                "yes" if a <= CLOSE_TO_TCP * b else "no",
            ))  # fmt: skip
    ours = _find(records, scenario="idle", target="mqant", transport="ws-listener")
    if ours:
        a = ours["rss_per_conn_kb"]
        rows.append((
            f"idle, the gate's own WebSocket port: RSS per connection ≤ {IDLE_LISTENER_KIB:g} KiB",
            f"{ours['alive']:,} alive of {ours['clients']:,}; {a:.1f} KiB",
            "yes" if a <= IDLE_LISTENER_KIB and ours["alive"] == ours["clients"] else "no",
        ))  # fmt: skip
    return rows


def markdown(records: list[Record], meta: dict[str, Any], plots: list[str]) -> str:
    parts = [
        f"Command: `{meta['command']}`  ",
        f"Run {meta['date']} on {meta['machine']}, commit `{meta['commit']}`, {meta['python']}.",
        "",
    ]
    reached = targets(records)
    if reached:
        parts += ["### Targets", "", "| target | reached | met |", "|---|---|---|"]
        parts += [f"| {t} | {figure} | {met} |" for t, figure, met in reached]
        parts.append("")
    for scenario, title in TITLES.items():
        rows = [r for r in records if r["scenario"] == scenario]
        if rows:
            parts += [f"### {title}", "", table(scenario, rows), ""]
    for plot in plots:
        parts += [f"![{Path(plot).stem}]({plot})", ""]
    return "\n".join(parts)


def plot(records: list[Record], out: Path) -> list[str]:
    """One PNG per scenario that ran; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = [
        ("rr", "cpu_per_msg_us", "server CPU µs per message (lower is better)", "clients"),
        ("rr", "rate", "messages per second", "clients"),
        ("fanout", "rate", "deliveries per second", "members"),
        ("idle", "rss_per_conn_kb", "RSS KiB per idle connection (lower is better)", None),
        ("rpc", "calls_per_cpu_s", "calls per CPU-second", "callers"),
    ]
    names = []
    for scenario, key, ylabel, xlabel in charts:
        rows = [r for r in records if r["scenario"] == scenario and r.get(key) is not None]
        if not rows:
            continue
        series = "transport" if scenario == "rpc" else "label"
        labels = list(dict.fromkeys(r[series] for r in rows))
        groups = sorted({r["clients"] for r in rows})
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            values = [
                next((r[key] for r in rows if r[series] == label and r["clients"] == g), 0)
                for g in groups
            ]
            xs = [g + (i - (len(labels) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, values, width, label=label)
        ax.set_xticks(range(len(groups)), [f"{g:,}" for g in groups])
        ax.set_xlabel(xlabel or "connections")
        ax.set_ylabel(ylabel)
        ax.set_title(TITLES[scenario].split(":")[0] + ": " + ylabel)
        ax.legend(fontsize="small")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        name = f"{scenario}-{key}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)
    return names
