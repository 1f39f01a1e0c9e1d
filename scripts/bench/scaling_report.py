"""The scaling run's outputs: a table (into docs/benchmarks.md, between its scaling
markers), a chart (docs/benchmarks/scaling.png) and the raw numbers (scaling.json)."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from typing import TYPE_CHECKING

from scripts.bench.peers.venvs import ROOT

if TYPE_CHECKING:
    from scripts.bench.scaling import Contender, Sample

PAGE = ROOT / "docs" / "benchmarks.md"
ASSETS = ROOT / "docs" / "benchmarks"
CHART = "scaling.png"
START, END = "<!-- bench:scaling:start -->", "<!-- bench:scaling:end -->"


def table(contenders: list[Contender], medians: dict[str, dict[int, Sample]]) -> str:
    """One row per contender and process count. Efficiency is rate at N / (N x rate at 1);
    the ceiling is the rate at which the host's cores would be full: cores / (worker +
    broker CPU per task)."""
    cores = os.cpu_count() or 1
    rows = [
        "| framework | broker | processes | drain (tasks/s) | vs 1 process | efficiency | "
        "worker CPU/task (us) | broker CPU/task (us) | cores busy (worker + broker) | "
        "host cores busy | ceiling (tasks/s) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in contenders:
        by_n = medians.get(c.name, {})
        one = by_n.get(1)
        for n, s in sorted(by_n.items()):
            speedup = f"{s.rate / one.rate:.2f}x" if one else "-"
            efficiency = f"{s.rate / (n * one.rate):.0%}" if one else "-"
            ceiling = cores / ((s.worker_us + s.broker_us) / 1e6)
            name = f"**{c.framework}**" if c.framework == "asynctasq" else c.framework
            rows.append(
                f"| {name} | {c.broker} | {n} | {s.rate:,.0f} | {speedup} | {efficiency} | "
                f"{s.worker_us:.1f} | {s.broker_us:.1f} | {s.cores:.2f} | {s.host_cores:.2f} | "
                f"{ceiling:,.0f} |"
            )
    return "\n".join(rows)


def chart(contenders: list[Contender], medians: dict[str, dict[int, Sample]]) -> None:
    """Rate against processes, one line per contender, with its linear ideal dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for c in contenders:
        by_n = dict(sorted(medians.get(c.name, {}).items()))
        if not by_n:
            continue
        ns, rates = list(by_n), [s.rate for s in by_n.values()]
        (line,) = ax.plot(ns, rates, marker="o", label=c.name)
        if 1 in by_n:
            ax.plot(ns, [by_n[1].rate * n for n in ns], ":", color=line.get_color(), alpha=0.6)
        for n, rate in zip(ns, rates, strict=True):
            ax.annotate(f"{rate:,.0f}", (n, rate), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)  # fmt: skip
    ax.set_xlabel("worker processes")
    ax.set_ylabel("no-op tasks per second")
    ax.set_title(
        f"Drain with N worker processes on {os.cpu_count()} cores (dotted: N x one process)",
        fontsize=10,
    )
    ax.set_xticks(sorted({n for by_n in medians.values() for n in by_n}))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(ASSETS / CHART)
    plt.close(fig)


def section(
    contenders: list[Contender],
    medians: dict[str, dict[int, Sample]],
    sizes: dict[str, int],
    repeats: int,
    command: str,
) -> str:
    tasks = ", ".join(f"{n:,} on {name.split('/')[1]}" for name, n in sizes.items())
    return (
        f"""
Last run: `{command}`: {tasks} tasks per drain, the run with the median rate of
{repeats} for each row (its CPU figures are from that same run). Machine:
{os.cpu_count()} cores ({platform.machine()}), shared with other work while this ran (the
"host cores busy" column counts that work too), Python {platform.python_version()}.

{table(contenders, medians)}

![Drain with N worker processes]({ASSETS.name}/{CHART})
""".rstrip()
        + "\n"
    )


def write(
    contenders: list[Contender],
    medians: dict[str, dict[int, Sample]],
    runs: dict[str, dict[int, list[Sample]]],
    sizes: dict[str, int],
    repeats: int,
    command: str,
) -> None:
    """Chart, raw numbers and the page section (the page must have the scaling markers)."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    chart(contenders, medians)
    raw = {
        name: {str(n): [asdict(s) for s in samples] for n, samples in by_n.items()}
        for name, by_n in runs.items()
    }
    (ASSETS / "scaling.json").write_text(
        json.dumps({"tasks": sizes, "repeats": repeats, "runs": raw}, indent=1) + "\n"
    )
    text = PAGE.read_text()
    if START not in text:
        raise RuntimeError(f"{PAGE} has no {START} marker: add the scaling section first")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(
        head + START + "\n" + section(contenders, medians, sizes, repeats, command) + END + tail
    )
