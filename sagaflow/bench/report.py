"""The bench's results: percentiles, bench-results/summary.json and summary.png."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The keys every summary carries (a test checks each is a positive number).
REQUIRED = (
    "sagas_per_s",
    "raw_sagas_per_s",
    "raw_ratio",
    "step_p50_ms_unloaded",
    "saga_p50_ms_unloaded",
    "step_p99_ms_half_load",
    "cpu_ms_per_step",
    "waiting_kib_per_workflow",
    "waiting_rebuild_s",
)


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    return float(s[min(len(s) - 1, round(q * (len(s) - 1)))])


def per_step(used: dict[str, float], steps: int, kinds: Sequence[str]) -> dict[str, float]:
    """CPU ms per step for each process kind, and their total."""
    out = {k: round(used.get(k, 0.0) / max(steps, 1), 4) for k in kinds}
    out["total"] = round(sum(out.values()), 4)
    return out


def latency(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 0.5),
        "p90": pct(values, 0.9),
        "p99": pct(values, 0.99),
        "max": max(values) if values else float("nan"),
    }


def write(out: Path, summary: dict[str, Any], detail: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    (out / "detail.json").write_text(json.dumps(detail, indent=2) + "\n")
    return path


def _rates(timeline: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Per-second rates (sagas' worth of completed steps) from a closed loop's timeline."""
    xs, ys = [], []
    prev_t, prev_n = 0.0, 0.0
    for t, _closed, n in timeline:
        if t > prev_t:
            xs.append(t)
            ys.append((n - prev_n) / (t - prev_t))
        prev_t, prev_n = t, n
    return xs, ys


def plot(out: Path, detail: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0][0]
    for system, color in (("sagaflow", "#3b7dd8"), ("raw", "#888888")):
        for i, run in enumerate(detail["closed_loop"][system]):
            xs, ys = _rates(run["timeline"])
            ax.plot(xs, ys, color=color, alpha=1.0 if i == 0 else 0.6, label=f"{system} #{i + 1}")
    ax.set_title("closed loop: sagas per second (completed steps / 5)")
    ax.set_yscale("log")  # sagaflow and the raw loop can be orders of magnitude apart
    ax.set_xlabel("s")
    ax.legend(fontsize=8)
    for ax, what in ((axes[0][1], "step_ms"), (axes[1][0], "saga_ms")):
        phases = [
            (p, c, detail[p][what]) for p, c in (("unloaded", "#2a9d50"), ("half_load", "#d8843b"))
        ]
        every = [v for _p, _c, values in phases for v in values]
        if every:
            # Shared bins, each run as fractions of its own samples: the unloaded run has a
            # hundredth of the half-load samples.
            hi = pct(every, 0.995)
            bins = [min(every) + (hi - min(every)) * i / 50 for i in range(51)]
            for phase, color, values in phases:
                if values:
                    ax.hist(
                        [min(v, hi) for v in values],
                        bins=bins,
                        weights=[1 / len(values)] * len(values),
                        alpha=0.6,
                        color=color,
                        label=f"{phase} (n={len(values)})",
                    )
        ax.set_title(f"sagaflow {'step' if what == 'step_ms' else 'saga'} latency")
        ax.set_xlabel("ms (values above p99.5 in the last bin)")
        ax.set_ylabel("fraction of the run's samples")
        ax.legend(fontsize=8)
    ax = axes[1][1]
    cpu = detail["cpu_ms_per_step"]
    kinds = [k for k in cpu["sagaflow"] if k != "total"]
    pos = list(range(len(kinds)))
    ax.bar([x - 0.2 for x in pos], [cpu["sagaflow"][k] for k in kinds], 0.4, label="sagaflow")
    ax.bar([x + 0.2 for x in pos], [cpu["raw"].get(k, 0.0) for k in kinds], 0.4, label="raw")
    ax.set_xticks(pos, kinds, fontsize=8)
    ax.set_title("CPU ms per step by process kind")
    ax.legend(fontsize=8)
    s = detail["summary"]
    fig.suptitle(
        f"sagaflow {s['sagas_per_s']:.0f} sagas/s vs raw {s['raw_sagas_per_s']:.0f}/s "
        f"(ratio {s['raw_ratio']:.2f}); {s['settings']['orchestrators']} orchestrator(s), "
        f"{s['settings']['workers']} worker(s), {s['settings']['partitions']} partitions"
    )
    fig.tight_layout()
    path = out / "summary.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
