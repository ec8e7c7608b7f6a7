"""PNG plots of the latest results (matplotlib, Agg backend: no display needed), written under
bench/results/plots/ (or the results folder given). Each plot is drawn only when its JSON is
there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _read(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _caption(fig: Figure, data: dict[str, Any]) -> None:
    m = data.get("machine", {})
    start, end = m.get("load_average_start") or ["?"], m.get("load_average_end") or ["?"]
    when = m.get("started", data.get("when", ""))
    fig.text(
        0.01,
        0.005,
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores; load average (1 min) at start/end "
        f"{start[0]}/{end[0]}; {when}",
        fontsize=7,
        color="dimgray",
    )


def _bar_labels(ax: Axes, fmt: str = "{:.1f}") -> None:
    for container in ax.containers:
        ax.bar_label(container, fmt=fmt, fontsize=7, padding=1)  # type: ignore[arg-type]


def concurrency(data: dict[str, Any], out: Path) -> Path:
    sweep, backend = data["sweep"], data["backend"]
    x = [r["streams_open"] for r in sweep]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ttft, gap, rate, rss = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    for rows, label, style in ((sweep, "Switchboard", "-o"), (backend, "backend alone", "--s")):
        ttft.plot(x, [r["ttft_p50_ms"] for r in rows], style, label=f"{label} p50")
        ttft.plot(x, [r["ttft_p95_ms"] for r in rows], style, alpha=0.5, label=f"{label} p95")
        gap.plot(x, [r["gap_p50_ms"] for r in rows], style, label=f"{label} p50")
        gap.plot(x, [r["gap_p95_ms"] for r in rows], style, alpha=0.5, label=f"{label} p95")
        rate.plot(x, [r["streams_per_s"] for r in rows], style, label=label)
    ttft.set(title="time to first token", ylabel="ms", yscale="log")
    gap.set(title=f"gap between tokens (backend sends one every {data['config']['gap_ms']} ms)")
    gap.set(ylabel="ms")
    rate.set(title="streams completed per second", ylabel="streams/s")
    errors = [r["errors"] for r in sweep]
    if any(errors):
        for xi, yi, e in zip(x, [r["streams_per_s"] for r in sweep], errors, strict=True):
            if e:
                rate.annotate(f"{e} errors", (xi, yi), fontsize=7, color="red")
    rss.plot(x, [r["rss_peak_total_mib"] for r in sweep], "-o", label="service + children")
    rss.plot(x, [r["rss_peak_service_mib"] for r in sweep], "-s", label="service process")
    rss.set(title="resident memory, peak during the level", ylabel="MiB")
    for ax in (ttft, gap, rate, rss):
        ax.set(xscale="log", xlabel="concurrent streams")
        ax.set_xticks(x, [str(v) for v in x])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    c = data["config"]
    fig.suptitle(
        f"Concurrency sweep: {c['tokens']}-token streams via /v1/chat/completions "
        f"(backend: first token {c['ttft_ms']} ms, then every {c['gap_ms']} ms)"
    )
    _caption(fig, data)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return _save(fig, out / "concurrency.png")


def footprint(data: dict[str, Any], out: Path) -> Path:
    fig, (start, mem) = plt.subplots(1, 2, figsize=(11, 4.5))
    cold = data["cold_start"]
    labels = ["/readyz 200", "first turn answered", "every store up"]
    values = [cold["ready_s_p50"], cold["first_turn_s_p50"], cold["stores_up_s"]]
    start.bar(labels, values, color=["tab:blue", "tab:green", "tab:gray"])
    _bar_labels(start, "{:.2f} s")
    start.set(title=f"cold start, launch to ... (p50 of {data['config']['launches']})", ylabel="s")
    rss = data["rss"]
    phases = [(k, rss[k]) for k in ("idle", "loaded_peak", "after_load") if rss.get(k)]
    names = [k.replace("_", " ") for k, _ in phases]
    service = [v["service_mib"] for _, v in phases]
    children = [v["total_mib"] - v["service_mib"] for _, v in phases]
    mem.bar(names, service, label="service process")
    mem.bar(names, children, bottom=service, label="children (valkey, Neo4j JVM)")
    for i, (_, v) in enumerate(phases):
        mem.annotate(f"{v['total_mib']:.0f} MiB", (i, v["total_mib"]), ha="center", fontsize=8)
    mem.set(
        title=f"resident memory (load: {data['config']['load_streams']} concurrent streams)",
        ylabel="MiB",
    )
    mem.legend(fontsize=8)
    fig.suptitle("Embedded default, scripted backend in place of the bundled model")
    _caption(fig, data)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, out / "footprint.png")


def runs(data: dict[str, Any], out: Path) -> Path:
    servers = [("Switchboard", data["switchboard"])]
    for key, label in (("langgraph_dev_poll_5ms", "langgraph dev\n(poll 5 ms)"),):
        if isinstance(data.get(key), dict):
            servers.append((label, data[key]))
    fig, (added, rate) = plt.subplots(1, 2, figsize=(10, 4.5))
    names = [n for n, _ in servers]
    added.bar(names, [s["added_ms_p50"] for _, s in servers], color=["tab:blue", "tab:orange"])
    _bar_labels(added, "{:.1f} ms")
    added.set(title="added latency of runs.wait, p50 (vs the graph in-process)", ylabel="ms")
    rate.bar(
        names, [s["throughput_runs_per_s"] for _, s in servers], color=["tab:blue", "tab:orange"]
    )
    _bar_labels(rate, "{:.0f}")
    rate.set(title=f"runs/s, {data['concurrency']} at a time", ylabel="runs/s")
    stock = data.get("langgraph_dev")
    note = (
        f"stock langgraph dev: +{stock['added_ms_p50']:.0f} ms added, "
        f"{stock['throughput_runs_per_s']:.0f} runs/s (its 0.5 s idle poll)"
        if isinstance(stock, dict)
        else ""
    )
    fig.suptitle(f"Runs through the queue vs langgraph dev, same graph. {note}", fontsize=10)
    _caption(fig, data)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, out / "runs_vs_peer.png")


def peers(data: dict[str, Any], out: Path) -> Path:
    servers = data["servers"]
    wanted = [
        ("Switchboard\nOpenAI", "switchboard_openai"),
        ("Switchboard\ncustom", "switchboard_custom"),
        ("Switchboard\nmessages-tuple", "switchboard_messages_tuple"),
        ("langgraph dev\npoll 5 ms, custom", "langgraph_dev_poll_5ms_custom"),
    ]
    shown = [(label, servers[key]) for label, key in wanted if isinstance(servers.get(key), dict)]
    colors = ["tab:orange" if "langgraph" in label else "tab:blue" for label, _ in shown]
    names = [n for n, _ in shown]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [
        ("added_ttft_ms_p50_1_client", "added TTFT p50, 1 client (goal ≤ 5 ms)", "ms", 5.0),
        ("added_ttft_ms_p50_10_clients", "added TTFT p50, 10 clients (goal ≤ 10 ms)", "ms", 10.0),
        ("cpu_ms_per_request", "server CPU per 12-token reply (goal ≤ 8 ms)", "ms", 8.0),
        ("requests_per_s_10_clients", "requests/s, 10 clients", "req/s", None),
    ]
    for ax, (key, title, unit, goal) in zip([a for row in axes for a in row], panels, strict=True):
        ax.bar(names, [s[key] for _, s in shown], color=colors)
        _bar_labels(ax)
        if goal is not None:
            ax.axhline(goal, color="red", linestyle="--", linewidth=1)
        ax.set(title=title, ylabel=unit)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("Side by side (PEERS.md's method): 12 one-word chunks from the scripted backend")
    _caption(fig, data)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, out / "peers.png")


def streaming(data: dict[str, Any], out: Path) -> Path:
    rows = data["comparison"]
    fig, (ttft, cpu) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = [f"{r['concurrency']} {r['arrivals']}" for r in rows]
    ttft.bar(names, [r["added_ttft_p50_ms"] for r in rows], label="p50")
    ttft.set(title="added TTFT p50 (256-token streams)", ylabel="ms", yscale="log")
    _bar_labels(ttft)
    cpu.bar(names, [r["server_cpu_ms_per_stream"] for r in rows])
    cpu.set(title="server CPU per stream", ylabel="ms")
    _bar_labels(cpu, "{:.0f}")
    for ax in (ttft, cpu):
        ax.tick_params(axis="x", labelsize=8, rotation=20)
    fig.suptitle("Streaming overhead vs the backend alone (/v1/chat/completions)")
    _caption(fig, data)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, out / "streaming.png")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render(results: Path) -> list[Path]:
    """Draw every plot whose results are in `results`; return the files written."""
    written = []
    out = results / "plots"
    for name, draw in (
        ("concurrency", concurrency),
        ("footprint", footprint),
        ("runs", runs),
        ("peers", peers),
        ("streaming", streaming),
    ):
        data = _read(results, name)
        if data is None:
            continue
        try:
            written.append(draw(data, out))
        except (KeyError, TypeError, IndexError) as exc:  # an older JSON without a field
            print(f"plot {name}: skipped ({exc!r})")
    return written
