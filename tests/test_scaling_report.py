"""The scaling page's summary: medians per cell, and the 2-vs-1 speed-up of each run, where
one and two processes ran minutes apart (a cell's median may come from another run)."""

from __future__ import annotations

from scripts.bench.scaling import Sample, contenders, median_sample
from scripts.bench.scaling_report import summary


def _sample(rate: float, run: int) -> Sample:
    return Sample(rate=rate, seconds=1.0, tasks=int(rate), worker_cpu=0.5, broker_cpu=0.1,
                  host_busy=0.7, run=run)  # fmt: skip


def test_each_run_pairs_its_own_one_and_two_process_drains() -> None:
    ours = contenders()[0]
    runs = {ours.name: {1: [_sample(100, 0), _sample(200, 1), _sample(150, 2)],
                        2: [_sample(160, 0), _sample(260, 1), _sample(300, 2)]}}  # fmt: skip
    medians = {ours.name: {n: median_sample(s) for n, s in runs[ours.name].items()}}
    text = summary([ours], medians, runs)
    row = next(line for line in text.splitlines() if ours.framework in line)
    # The medians (150 and 260) alone would say 1.73x; the runs said 1.60x, 1.30x and 2.00x.
    assert "| 150 | 260 | 87% | 1.60x, 1.30x, 2.00x |" in row


def test_a_run_whose_drain_failed_is_left_out_not_paired_with_another() -> None:
    ours = contenders()[0]
    # Run 0 lost its one-process drain and run 2 its two-process one: only run 1 pairs.
    runs = {ours.name: {1: [_sample(200, 1), _sample(150, 2)],
                        2: [_sample(160, 0), _sample(260, 1)]}}  # fmt: skip
    medians = {ours.name: {n: median_sample(s) for n, s in runs[ours.name].items()}}
    row = summary([ours], medians, runs).splitlines()[-1]
    assert row.endswith("| 1.30x |")
