"""The comparison's outputs: a markdown table (into docs/benchmarks.md), PNG charts and the
raw numbers (docs/benchmarks/comparison.json)."""

from __future__ import annotations

import json
import os
import platform

from scripts.bench.peers.contenders import UNAVAILABLE, Contender
from scripts.bench.peers.harness import Measured, Workload
from scripts.bench.peers.venvs import ROOT

PAGE = ROOT / "docs" / "benchmarks.md"
ASSETS = ROOT / "docs" / "benchmarks"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
CHARTS = {
    "drain": ("comparison-drain.png", "Drain: no-op tasks per second (higher is better)"),
    "enqueue": ("comparison-enqueue.png", "Enqueue, one call per task: tasks per second"),
    "p50": ("comparison-latency.png", "Dispatch-to-start latency p50, ms (lower is better)"),
}


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if kind in ("enqueue", "drain") else f"{value:,.1f}"


def _ratio(ours: float | None, theirs: float | None, higher_better: bool) -> str:
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x" if higher_better else f"{theirs / ours:.2f}x"


def table(contenders: list[Contender], results: dict[str, Measured]) -> str:
    """One row per contender; the ratio columns say how many times better AsyncTasQ did on
    the same broker (>1: AsyncTasQ ahead)."""
    rows = [
        "| framework | broker | enqueue (tasks/s) | drain (tasks/s) | latency p50 (ms) | "
        "latency p99 (ms) | AsyncTasQ drain ÷ this | this p50 ÷ AsyncTasQ p50 |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    ours = {c.broker: results[c.name] for c in contenders if c.ours}
    for c in contenders:
        m = results[c.name]
        if m.error and not m.drain:
            rows.append(f"| {c.framework} | {c.broker} | failed: {m.error[:120]} | | | | | |")
            continue
        base = ours.get(c.broker)
        drain_ratio = _ratio(base.median("drain") if base else None, m.median("drain"), True)
        p50_ratio = _ratio(base.median("p50") if base else None, m.median("p50"), False)
        if c.ours:
            drain_ratio = p50_ratio = "1.00x"
        name = f"**{c.framework}**" if c.ours else c.framework
        rows.append(
            f"| {name} | {c.broker} | {_fmt(m.median('enqueue'), 'enqueue')} | "
            f"{_fmt(m.median('drain'), 'drain')} | {_fmt(m.median('p50'), 'p50')} | "
            f"{_fmt(m.median('p99'), 'p99')} | {drain_ratio} | {p50_ratio} |"
        )
    return "\n".join(rows)


def charts(contenders: list[Contender], results: dict[str, Measured]) -> list[str]:
    """Bar charts (medians), one per measure; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for kind, (filename, title) in CHARTS.items():
        shown = [c for c in contenders if results[c.name].median(kind) is not None]
        values = [results[c.name].median(kind) or 0.0 for c in shown]
        labels = [c.name for c in shown]
        colours = ["#3f51b5" if c.ours else "#9e9e9e" for c in shown]
        fig, ax = plt.subplots(figsize=(9, 0.42 * len(shown) + 1.2), dpi=110)
        ax.barh(labels, values, color=colours)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=11)
        if kind == "p50":
            ax.set_xscale("log")
        for y, value in enumerate(values):
            ax.text(value, y, f" {_fmt(value, kind)}", va="center", fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        fig.savefig(ASSETS / filename)
        plt.close(fig)
        written.append(filename)
    return written


def versions(contenders: list[Contender]) -> str:
    """The pins of the peers in this comparison (others, such as upstream asynctasq 1.7 of
    the scaling run, are pinned alongside)."""
    from scripts.bench.peers.contenders import PEER_PACKAGES

    frameworks = {c.framework for c in contenders}
    pins = [p for name, pkgs in PEER_PACKAGES.items() if name in frameworks for p in pkgs]
    return ", ".join(p for p in pins if "==" in p)


def section(
    contenders: list[Contender], results: dict[str, Measured], workload: Workload, command: str
) -> str:
    """The markdown that goes between the markers of docs/benchmarks.md."""
    images = "\n".join(f"![{title}](benchmarks/{filename})" for filename, title in CHARTS.values())
    missing = "\n".join(f"* **{name}**: not measured: {why}." for name, why in UNAVAILABLE.items())
    failed = "\n".join(
        f"* **{c.name}**: {results[c.name].error}" for c in contenders if results[c.name].error
    )
    return (
        f"""
Last run: `{command}`: {workload.tasks:,} tasks per drain, {workload.samples} latency samples
(after warm-up), medians of {workload.repeats} runs, every framework in each run. Machine:
{os.cpu_count()} cores ({platform.machine()}), shared with other work while this ran, so
absolute numbers are noisy and low; compare within a broker, in the same run. Python
{platform.python_version()}. Peers: {versions(contenders)}.

{table(contenders, results)}

{images}

{missing}
{failed}
""".rstrip()
        + "\n"
    )


def write(
    contenders: list[Contender], results: dict[str, Measured], workload: Workload, command: str
) -> None:
    """Charts, raw numbers and the page section."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    charts(contenders, results)
    raw = {
        c.name: {k: getattr(results[c.name], k) for k in ("enqueue", "drain", "p50", "p99")}
        | {"error": results[c.name].error}
        for c in contenders
    }
    shape = {"tasks": workload.tasks, "samples": workload.samples, "repeats": workload.repeats}
    (ASSETS / "comparison.json").write_text(
        json.dumps({"workload": shape, "runs": raw}, indent=1) + "\n"
    )
    text = PAGE.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(
        head + START + "\n" + section(contenders, results, workload, command) + END + tail
    )
