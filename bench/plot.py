"""The benchmark's picture: latencies beside the floor's, and Actions per unit of work."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, actions) = plt.subplots(1, 2, figsize=(12, 4.5))
    rows = ["register", "click_warm", "click_cold"]
    for offset, who in ((-0.2, "floor"), (0.2, "ours")):
        found = results["latency"][who]
        p50 = [found[r]["p50_ms"] for r in rows]
        p99 = [found[r]["p99_ms"] for r in rows]
        xs = [i + offset for i in range(len(rows))]
        latency.bar(xs, p99, width=0.38, alpha=0.35, label=f"{who} p99")
        latency.bar(xs, p50, width=0.38, label=f"{who} p50")
    latency.set_xticks(range(len(rows)), ["register", "click (warm)", "click (cold)"])
    latency.set_ylabel("ms at the driver (open loop)")
    latency.set_title(f"latency at {results['args']['rate']}/s")
    latency.legend(fontsize=8)

    summary = results["summary"]
    names = ["floor run", "onboarding", "member invitation", "reminder"]
    values = [summary["actions_per_floor_run"], summary["actions_per_onboarding"],
              summary["actions_per_member_invitation"], summary["actions_per_reminder"]]  # fmt: skip
    actions.bar(names, values, color=["grey", "tab:blue", "tab:blue", "tab:blue"])
    for x, value in enumerate(values):
        actions.text(x, value, f"{value:g}", ha="center", va="bottom")
    actions.axhline(8, color="red", linestyle="--", linewidth=1, label="goal (onboarding, member)")
    actions.set_ylabel("Temporal Actions (server's metric)")
    actions.set_title("Actions per unit of work")
    actions.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
