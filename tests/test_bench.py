"""How `make bench` reads capacity: the highest rate whose p99 held, each side stepped
until it failed two rates in a row, a rate's steps counted by their median."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from bench.driver import Bench
from bench.run import _median_step, capacity


class _Steps:
    """A stand-in for the benchmark's driver (a real run takes half an hour): each step
    of a side answers every click in the latency given for that step, in order."""

    def __init__(self, floor: list[float], ours: list[float]) -> None:
        self._latencies = {"floor": floor, "ours": ours}
        self._now = {"floor": 0.0, "ours": 0.0}
        self.steps = {"floor": 0, "ours": 0}

    def _next_step(self, who: str) -> None:
        self._now[who] = self._latencies[who][self.steps[who]]
        self.steps[who] += 1

    async def floor_ready(self, count: int) -> list[int]:
        self._next_step("floor")
        return list(range(count))

    async def register(self, i: int = 0) -> int:
        if i == 0:
            self._next_step("ours")
        return i

    async def floor_click(self, _: Any) -> float:
        return self._now["floor"]

    async def click(self, _: Any) -> float:
        return self._now["ours"]


async def test_each_side_is_stepped_until_it_fails_two_rates_in_a_row() -> None:
    steps = _Steps(floor=[0.05, 0.05, 0.05, 0.9], ours=[0.05, 0.4, 0.9])
    async with asyncio.timeout(60):
        found = await capacity(cast(Bench, steps), [80, 160, 240, 320], seconds=0.01, registrations_per_s=1000)

    assert [r["rate"] for r in found["ours"]] == [80, 160, 240], "ours stops after two failed rates"
    assert [r["rate"] for r in found["floor"]] == [80, 160, 240, 320]
    assert steps.steps == {"floor": 4, "ours": 3}
    assert (found["ours_max_rate"], found["ours_limit_reached"]) == (80, True)
    assert (found["floor_max_rate"], found["floor_limit_reached"]) == (240, True)
    assert found["floor"][0]["p99_ms"] == 50.0


async def test_every_rate_held_is_a_limit_not_reached() -> None:
    steps = _Steps(floor=[0.05, 0.05], ours=[0.05, 0.05])
    async with asyncio.timeout(60):
        found = await capacity(cast(Bench, steps), [80, 160], seconds=0.01, registrations_per_s=1000)
    assert (found["floor_max_rate"], found["floor_limit_reached"]) == (160, False)
    assert (found["ours_max_rate"], found["ours_limit_reached"]) == (160, False)


def test_a_rate_stepped_three_times_counts_its_median_step() -> None:
    steps = [
        {"p50_ms": 20.0, "p95_ms": 90.0, "p99_ms": 601.3, "max_ms": 700.0, "unanswered": 0},
        {"p50_ms": 15.0, "p95_ms": 60.0, "p99_ms": 203.3, "max_ms": 250.0, "unanswered": 1},
        {"p50_ms": 18.0, "p95_ms": 70.0, "p99_ms": 282.8, "max_ms": 400.0, "unanswered": 0},
    ]
    assert _median_step(steps) == {
        "p50_ms": 18.0,
        "p95_ms": 70.0,
        "p99_ms": 282.8,
        "max_ms": 400.0,
        "unanswered": 1,
        "p99_each": [601.3, 203.3, 282.8],
    }


def test_every_benchmark_imports_and_every_repository_file_it_names_exists() -> None:
    """A benchmark runs for minutes before it reads a file: a file moved since (a history
    frozen with a release, say) is found here in a second, not at the end of a run."""
    import importlib
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    for source in sorted((root / "bench").glob("*.py")):
        module = importlib.import_module(f"bench.{source.stem}")
        for name, value in vars(module).items():
            if isinstance(value, Path) and value.is_relative_to(root) and value.suffix:
                assert value.exists(), f"bench/{source.name}: {name} = {value}"
        for named in re.findall(r"[\"']((?:tests|bench|docs|deploy)/[\w./-]+\.\w+)[\"']", source.read_text()):
            assert (root / named).exists(), f"bench/{source.name} names {named}"
