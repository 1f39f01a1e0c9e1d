"""The scaling run's outputs: a summary and a detailed table (into docs/benchmarks.md,
between its scaling markers), a chart of rate and efficiency (docs/benchmarks/scaling.png)
and the raw numbers (scaling.json)."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from scripts.bench.peers.venvs import ROOT

if TYPE_CHECKING:
    from scripts.bench.scaling import Contender, Sample

PAGE = ROOT / "docs" / "benchmarks.md"
ASSETS = ROOT / "docs" / "benchmarks"
CHART = "scaling.png"
START, END = "<!-- bench:scaling:start -->", "<!-- bench:scaling:end -->"


def summary(
    contenders: list[Contender],
    medians: dict[str, dict[int, Sample]],
    runs: dict[str, dict[int, list[Sample]]] | None = None,
) -> str:
    """One row per contender: tasks/s at each process count, then the efficiency at each
    count above one (rate at N / (N x rate at 1)); with `runs`, also the speed-up at 2
    processes in each run, where 1 and 2 processes ran minutes apart (the medians of a
    column may come from different runs, on a host whose speed drifts between them)."""
    counts = sorted({n for by_n in medians.values() for n in by_n})
    more = [n for n in counts if n > 1]
    paired = runs is not None and 1 in counts and 2 in counts
    head = (
        ["framework", "broker"]
        + [f"tasks/s, {n} process{'es' if n > 1 else ''}" for n in counts]
        + [f"efficiency at {n}" for n in more]
        + (["2 vs 1, each run"] if paired else [])
    )
    rows = [
        "| " + " | ".join(head) + " |",
        "|---|---|" + "--:|" * (len(counts) + len(more)) + ("--:|" if paired else ""),
    ]
    for c in contenders:
        by_n = medians.get(c.name, {})
        if not by_n:
            continue
        one = by_n.get(1)
        rates = [f"{by_n[n].rate:,.0f}" if n in by_n else "-" for n in counts]
        efficiency = [
            f"{by_n[n].rate / (n * one.rate):.0%}" if one and n in by_n else "-" for n in more
        ]
        each = [_each_run(runs.get(c.name, {}))] if runs is not None and paired else []
        name = f"**{c.framework}**" if c.ours else c.framework
        rows.append("| " + " | ".join([name, c.broker, *rates, *efficiency, *each]) + " |")
    return "\n".join(rows)


def _each_run(by_n: dict[int, list[Sample]]) -> str:
    """Rate at 2 / rate at 1 of each run that has both drains ("-" when none has)."""
    ones = {s.run: s for s in by_n.get(1, [])}
    pairs = [(ones[two.run], two) for two in by_n.get(2, []) if two.run in ones]
    if not pairs:
        return "-"
    return ", ".join(f"{two.rate / one.rate:.2f}x" for one, two in pairs)


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
            name = f"**{c.framework}**" if c.ours else c.framework
            rows.append(
                f"| {name} | {c.broker} | {n} | {s.rate:,.0f} | {speedup} | {efficiency} | "
                f"{s.worker_us:.1f} | {s.broker_us:.1f} | {s.cores:.2f} | {s.host_cores:.2f} | "
                f"{ceiling:,.0f} |"
            )
    return "\n".join(rows)


def chart(contenders: list[Contender], medians: dict[str, dict[int, Sample]]) -> None:
    """Left: rate against processes, one line per contender. Right: efficiency against
    processes (100% is N times one process), where frameworks of very different speeds
    compare on one scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, eff_ax) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=110)
    counts = sorted({n for by_n in medians.values() for n in by_n})
    for c in contenders:
        by_n = dict(sorted(medians.get(c.name, {}).items()))
        if not by_n:
            continue
        ns = list(by_n)
        style: dict[str, Any] = {
            "linewidth": 2.6 if c.ours else 1.4,
            "linestyle": "--" if c.broker == "postgres" else "-",
        }
        (line,) = rate_ax.plot(ns, [s.rate for s in by_n.values()], marker="o", label=c.name,
                               **style)  # fmt: skip
        rate_ax.annotate(f"{by_n[ns[-1]].rate:,.0f}", (ns[-1], by_n[ns[-1]].rate),
                         textcoords="offset points", xytext=(4, 0), fontsize=7,
                         color=line.get_color())  # fmt: skip
        if 1 in by_n:
            one = by_n[1].rate
            eff_ax.plot(ns, [100 * s.rate / (n * one) for n, s in by_n.items()], marker="o",
                        color=line.get_color(), **style)  # fmt: skip
    rate_ax.set_ylabel("no-op tasks per second")
    rate_ax.set_title("Drain rate", fontsize=10)
    rate_ax.set_ylim(bottom=0)
    rate_ax.legend(fontsize=7)
    eff_ax.axhline(100, linestyle=":", color="grey", linewidth=1)
    eff_ax.set_ylabel("efficiency: rate at N / (N x rate at 1), %")
    eff_ax.set_title("Efficiency (100% = linear)", fontsize=10)
    eff_ax.set_ylim(bottom=0)
    for ax in (rate_ax, eff_ax):
        ax.set_xlabel("worker processes")
        ax.set_xticks(counts)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"Drain with N worker processes on {os.cpu_count()} cores", fontsize=11)
    fig.tight_layout()
    fig.savefig(ASSETS / CHART)
    plt.close(fig)


def _sizes(contenders: list[Contender], sizes: dict[str, int]) -> str:
    """Tasks per drain, once per broker when every contender on it had the same."""
    by_broker: dict[str, set[int]] = {}
    for c in contenders:
        if c.name in sizes:
            by_broker.setdefault(c.broker, set()).add(sizes[c.name])
    parts = []
    for broker, found in by_broker.items():
        if len(found) == 1:
            parts.append(f"{found.pop():,} on {broker}")
        else:
            parts.extend(f"{sizes[c.name]:,} for {c.name}" for c in contenders if c.name in sizes
                         and c.broker == broker)  # fmt: skip
    return ", ".join(parts)


def section(
    contenders: list[Contender],
    medians: dict[str, dict[int, Sample]],
    runs: dict[str, dict[int, list[Sample]]],
    sizes: dict[str, int],
    repeats: int,
    command: str,
) -> str:
    ran = [c for c in contenders if medians.get(c.name)]
    how = "\n".join(f"* {c.name}: {c.how}" for c in ran)
    return (
        f"""
Last run: `{command}`: {_sizes(ran, sizes)} tasks per drain, the run with the median rate of
{repeats} for each row (its CPU figures are from that same run). Machine:
{os.cpu_count()} cores ({platform.machine()}); the "host cores busy" column counts everything
the host ran meanwhile, this run's processes and any other work; AsyncTasQ and the peers on Python
{platform.python_version()}, upstream asynctasq 1.7 on Python 3.12 (it needs 3.12).

How each one runs N processes:

{how}

{summary(ran, medians, runs)}

Per process count, with where the CPU went:

{table(ran, medians)}

![Drain rate and efficiency with N worker processes]({ASSETS.name}/{CHART})
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
        json.dumps({"command": command, "tasks": sizes, "repeats": repeats, "runs": raw}, indent=1)
        + "\n"
    )
    text = PAGE.read_text()
    if START not in text:
        raise RuntimeError(f"{PAGE} has no {START} marker: add the scaling section first")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    body = section(contenders, medians, runs, sizes, repeats, command)
    PAGE.write_text(head + START + "\n" + body + END + tail)
