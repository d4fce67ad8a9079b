"""`python -m sagaflow.bench.saga`: sagaflow against a raw Kafka loop on the local stack.

In one invocation, on the same broker and Postgres, with N orchestrator and M worker
processes (five instant activities per saga, so the figures are the engine's own cost):

1. unloaded latency: sagas one at a time (step and saga p50);
2. maximum throughput: a closed loop keeping `--in-flight` sagas open for `--duration` seconds,
   interleaved round by round with the raw confluent-kafka loop of the same shape
   (sagaflow.bench.raw), with CPU ms per step for every process kind;
3. latency under load: an open loop at half the measured maximum (step p99);
4. waiting workflows: memory per parked workflow, rebuild and kill -9 to ready, then all of
   them signalled and completed.

Writes bench-results/summary.json (+ detail.json) and summary.png. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sagaflow.bench import load, report, waiting
from sagaflow.bench.procs import (
    ROOT,
    CpuMeter,
    Proc,
    exited,
    raw_processes,
    sagaflow_services,
    wait_ready,
)
from sagaflow.bench.raw import send_starts, start_producer
from sagaflow.client import Client
from sagaflow.config import Config
from sagaflow.kafka.admin import create_topics

# The fastest split of the 2-core box, measured 2026-12-06 (docs/scaling.md): 1/1, 1/2 and 2/2
# orchestrators/workers ran 50, 68 and 51 sagas/s; the worker is the costlier process per step.
DEFAULT_ORCHESTRATORS = 1
DEFAULT_WORKERS = 2
SERVICE_KINDS = ("orchestrators", "workers", "broker", "postgres")


def _sampling_env(sampling: str) -> dict[str, str]:
    """OTEL_* for the services: the shipped default sampler, a ratio, or tracing off."""
    if sampling == "default":
        return {}
    if sampling == "off":
        return {"OTEL_SDK_DISABLED": "true"}
    ratio = float(sampling)
    if not 0.0 <= ratio <= 1.0:
        raise SystemExit(f"--sampling {sampling!r}: use 'default', 'off' or a ratio in [0, 1]")
    return {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": sampling}


def _env(args: argparse.Namespace, tag: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SAGAFLOW_APP": "sagaflow.bench.app:registry",
        "SAGAFLOW_TOPIC_PREFIX": f"{tag}.",
        "SAGAFLOW_PARTITIONS": str(args.partitions),
        "SAGAFLOW_ORCHESTRATOR_GROUP": f"{tag}-orchestrator",
        "SAGAFLOW_WORKER_GROUP_PREFIX": f"{tag}-worker-",
        "SAGAFLOW_WORKER_CONCURRENCY": str(args.concurrency),
        "SAGAFLOW_PROJECTOR": "off",
        "OTEL_SERVICE_NAME": "sagaflow-bench",
        **_sampling_env(args.sampling),
    }
    env.setdefault("SAGAFLOW_CHECKPOINT_INTERVAL_MS", "1000")
    return env


def _setup(config: Config, raw_config: Config) -> None:
    from sagaflow.db.migrate import migrate

    create_topics(config, ["bench"])
    create_topics(raw_config, ["bench"])
    asyncio.run(migrate(config.database_url))


def _warm(tracker: load.Tracker, send: load.Sender, label: str, n: int) -> None:
    base = tracker.closed
    send([f"{label}-{i}" for i in range(n)])
    tracker.wait_until(lambda: tracker.closed - base >= n, 120.0, f"{label} warm-up")


def _cpu_per_step(used: Mapping[str, float], sagas: int, raw: bool) -> dict[str, float]:
    # The raw loop's processes are reported under the same names as sagaflow's; the other
    # system's (idle) processes are left out of each figure.
    prefix = "raw_" if raw else ""
    named = {k: used.get(prefix + k, 0.0) for k in ("orchestrators", "workers")}
    named.update({k: used.get(k, 0.0) for k in ("broker", "postgres")})
    return report.per_step(named, sagas * 5, SERVICE_KINDS)


def _closed_rounds(
    args: argparse.Namespace,
    trackers: dict[str, load.Tracker],
    senders: dict[str, load.Sender],
    meter: CpuMeter,
    tag: str,
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"sagaflow": [], "raw": []}
    cpu: dict[str, dict[str, float]] = {"sagaflow": {}, "raw": {}}
    closed: dict[str, int] = {"sagaflow": 0, "raw": 0}
    for r in range(args.rounds):
        for system, seconds in (("sagaflow", args.duration), ("raw", args.raw_duration)):
            print(
                f"==> closed loop {r + 1}/{args.rounds}: {system}, {seconds:.0f}s, "
                f"{args.in_flight} in flight",
                flush=True,
            )
            before, began = meter.read(), time.monotonic()
            run = load.closed_loop(
                trackers[system],
                senders[system],
                f"{tag}-{system}-c{r}",
                seconds,
                args.in_flight,
                ramp_s=args.ramp,
            )
            used = CpuMeter.used(before, meter.read())
            wall_ms = (time.monotonic() - began) * 1000
            for k, v in used.items():
                cpu[system][k] = cpu[system].get(k, 0.0) + v
            closed[system] += run["sent"]
            runs[system].append(run)
            busy = ", ".join(
                f"{k} {v / wall_ms:.0%}" for k, v in sorted(used.items()) if v / wall_ms >= 0.05
            )
            print(
                f"    {system}: {run['sagas_per_s']:.1f} sagas/s (CPU, share of one core: {busy})",
                flush=True,
            )
    return {
        "runs": runs,
        "cpu_ms_per_step": {
            "sagaflow": _cpu_per_step(cpu["sagaflow"], closed["sagaflow"], raw=False),
            "raw": _cpu_per_step(cpu["raw"], closed["raw"], raw=True),
        },
        "cpu_other_ms_per_step": {
            s: {
                k: round(cpu[s].get(k, 0.0) / max(closed[s] * 5, 1), 4)
                for k in ("jaeger", "driver")
            }
            for s in cpu
        },
    }


def _print_capacity(args: argparse.Namespace) -> None:
    p = args.partitions
    print(
        f"==> {args.orchestrators} orchestrator(s), {args.workers} worker(s), {p} partitions "
        f"(commands/events/tasks): at most {p} orchestrators and {p} workers do work, any more "
        "are idle standbys that take over partitions on failure",
        flush=True,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = f"bench{int(time.time())}"
    env = _env(args, tag)
    raw_env = {**env, "SAGAFLOW_TOPIC_PREFIX": f"{tag}.raw."}
    config, raw_config = Config.from_env(env), Config.from_env(raw_env)
    print(
        f"==> topics under {tag}. and {tag}.raw. ({args.partitions} partitions); "
        "migrating Postgres",
        flush=True,
    )
    _setup(config, raw_config)
    _print_capacity(args)
    services = sagaflow_services(env, tag, args.orchestrators, args.workers)
    raws = raw_processes(raw_env, args.orchestrators, args.workers)
    procs: list[Proc] = [p.start() for p in services + raws]
    trackers = {
        "sagaflow": load.Tracker(config, load.sagaflow_decoder).start(),
        "raw": load.Tracker(raw_config, load.raw_decoder).start(),
    }
    for t in trackers.values():
        t.trouble = lambda: exited(procs)
    try:
        print(f"    services ready in {wait_ready(procs):.1f}s", flush=True)
        client, raw_producer = Client(config), start_producer(raw_config)
        senders: dict[str, load.Sender] = {
            "sagaflow": lambda ids: _start_many(client, ids),
            "raw": lambda ids: send_starts(raw_producer, raw_config, ids),
        }
        print("==> warm-up", flush=True)
        for system in ("sagaflow", "raw"):
            _warm(trackers[system], senders[system], f"{tag}-{system}-warm", args.warm)
        print(f"==> unloaded: {args.sequential} sagas one at a time", flush=True)
        unloaded = load.one_at_a_time(
            trackers["sagaflow"], senders["sagaflow"], f"{tag}-seq", args.sequential
        )
        raw_unloaded = load.one_at_a_time(
            trackers["raw"], senders["raw"], f"{tag}-raw-seq", args.sequential
        )
        print(
            f"    sagaflow step p50 {report.pct(unloaded['step_ms'], 0.5):.1f} ms, saga p50 "
            f"{report.pct(unloaded['saga_ms'], 0.5):.1f} ms; raw step p50 "
            f"{report.pct(raw_unloaded['step_ms'], 0.5):.1f} ms",
            flush=True,
        )
        meter = CpuMeter(procs)
        missing = [k for k, pids in meter.pids().items() if not pids]
        if missing:
            print(
                f"    no process found for {', '.join(missing)}: their CPU is not measured (the "
                "bench reads the local stack of this clone; is SAGAFLOW_PG_SHARED_DIR the same "
                "as for `make up`?)",
                flush=True,
            )
        closed = _closed_rounds(args, trackers, senders, meter, tag)
        # Means over the rounds; sagaflow and raw alternate, so both see the same drift of a
        # shared box.
        sf_mean = _mean(r["sagas_per_s"] for r in closed["runs"]["sagaflow"])
        raw_mean = _mean(r["sagas_per_s"] for r in closed["runs"]["raw"])
        rate = max(1.0, sf_mean / 2)
        print(
            f"==> open loop at half the maximum: {rate:.0f} sagas/s for {args.open_duration:.0f}s",
            flush=True,
        )
        half = load.open_loop(
            trackers["sagaflow"], senders["sagaflow"], f"{tag}-open", rate, args.open_duration
        )
        print(f"    step p99 {report.pct(half['step_ms'], 0.99):.1f} ms", flush=True)
        orchestrators = [p for p in procs if p.kind == "orchestrators"]
        print(f"==> waiting workflows: {args.waiting:,} parked on wait_for_signal", flush=True)
        wait, restarted = waiting.run(
            config, client, trackers["sagaflow"], orchestrators, args.waiting, f"{tag}-wait"
        )
        procs += restarted
    finally:
        for t in trackers.values():
            t.stop()
        for p in procs:
            p.stop()
    summary = {
        "sagas_per_s": round(sf_mean, 1),
        "raw_sagas_per_s": round(raw_mean, 1),
        "raw_ratio": round(sf_mean / raw_mean, 3) if raw_mean else 0.0,
        "step_p50_ms_unloaded": report.pct(unloaded["step_ms"], 0.5),
        "saga_p50_ms_unloaded": report.pct(unloaded["saga_ms"], 0.5),
        "step_p99_ms_half_load": report.pct(half["step_ms"], 0.99),
        "cpu_ms_per_step": closed["cpu_ms_per_step"]["sagaflow"],
        "raw_cpu_ms_per_step": closed["cpu_ms_per_step"]["raw"],
        "cpu_other_ms_per_step": closed["cpu_other_ms_per_step"],
        "waiting_kib_per_workflow": round(wait["kib_per_workflow"], 3),
        "waiting_rebuild_s": round(wait["kill9_to_ready_s"], 3),
        "waiting_rebuild_in_process_s": round(wait["rebuild_in_process_s"], 3),
        "waiting_completed": wait["signalled_completed"],
        "sagas_per_s_rounds": [round(r["sagas_per_s"], 1) for r in closed["runs"]["sagaflow"]],
        "raw_sagas_per_s_rounds": [round(r["sagas_per_s"], 1) for r in closed["runs"]["raw"]],
        "half_load": {
            "rate": round(rate, 1),
            "step": report.latency(half["step_ms"]),
            "saga": report.latency(half["saga_ms"]),
        },
        "unloaded": {
            "step": report.latency(unloaded["step_ms"]),
            "saga": report.latency(unloaded["saga_ms"]),
        },
        "raw_unloaded": {
            "step": report.latency(raw_unloaded["step_ms"]),
            "saga": report.latency(raw_unloaded["saga_ms"]),
        },
        "settings": _settings(args, config, env, tag),
    }
    return {
        "summary": summary,
        "closed_loop": closed["runs"],
        "cpu_ms_per_step": closed["cpu_ms_per_step"],
        "cpu_other_ms_per_step": closed["cpu_other_ms_per_step"],
        "unloaded": unloaded,
        "half_load": half,
        "waiting": wait,
    }


def _start_many(client: Client, ids: list[str]) -> None:
    client.start_many("bench_saga", ((w, {"order_id": w}) for w in ids))


def _mean(values: Any) -> float:
    v = list(values)
    return sum(v) / len(v) if v else 0.0


def _settings(
    args: argparse.Namespace, config: Config, env: Mapping[str, str], tag: str
) -> dict[str, Any]:
    return {
        "tag": tag,
        "orchestrators": args.orchestrators,
        "workers": args.workers,
        "partitions": args.partitions,
        "in_flight": args.in_flight,
        "duration_s": args.duration,
        "raw_duration_s": args.raw_duration,
        "ramp_s": args.ramp,
        "rounds": args.rounds,
        "open_duration_s": args.open_duration,
        "worker_concurrency": config.worker_concurrency,
        "batch_max": config.batch_max,
        "commit_interval_ms": config.commit_interval_ms,
        "checkpoint_interval_ms": config.checkpoint_interval_ms,
        "sampling": args.sampling,
        "otel_traces_sampler": env.get("OTEL_TRACES_SAMPLER", "(shipped default)"),
        "otel_traces_sampler_arg": env.get("OTEL_TRACES_SAMPLER_ARG", ""),
        "otel_sdk_disabled": env.get("OTEL_SDK_DISABLED", "false"),
        "activities_per_saga": 5,
        "waiting_workflows": args.waiting,
        "cpus": os.cpu_count(),
    }


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m sagaflow.bench.saga", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a short run: 10s loops, 200 waiting")
    ap.add_argument("--duration", type=float, help="seconds of each sagaflow closed loop (60)")
    ap.add_argument(
        "--raw-duration", type=float, help="seconds of each raw closed loop (duration/2)"
    )
    ap.add_argument(
        "--open-duration", type=float, help="seconds of the half-load open loop (duration/2)"
    )
    ap.add_argument(
        "--ramp", type=float, help="seconds of each closed loop before it is timed (duration/6)"
    )
    ap.add_argument(
        "--rounds", type=int, help="closed-loop rounds, sagaflow and raw interleaved (2)"
    )
    ap.add_argument("--in-flight", type=int, help="sagas kept open by the closed loop (2000)")
    ap.add_argument("--waiting", type=int, help="workflows parked on wait_for_signal (100000)")
    ap.add_argument("--sequential", type=int, help="sagas run one at a time (20)")
    ap.add_argument("--warm", type=int, default=50, help="warm-up sagas per system")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=64, help="SAGAFLOW_WORKER_CONCURRENCY")
    ap.add_argument(
        "--orchestrators",
        type=int,
        default=_env_int("SAGAFLOW_BENCH_ORCHESTRATORS", DEFAULT_ORCHESTRATORS),
        help="orchestrator processes (env SAGAFLOW_BENCH_ORCHESTRATORS)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=_env_int("SAGAFLOW_BENCH_WORKERS", DEFAULT_WORKERS),
        help="worker processes (env SAGAFLOW_BENCH_WORKERS)",
    )
    ap.add_argument(
        "--sampling",
        default="default",
        help="'default' (shipped sampler), 'off', or a ratio such as 1.0",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results")
    return ap


def _fill(args: argparse.Namespace) -> argparse.Namespace:
    quick = args.quick
    defaults: dict[str, Callable[[], Any]] = {
        "duration": lambda: 10.0 if quick else 60.0,
        "raw_duration": lambda: args.duration / 2,
        "open_duration": lambda: max(5.0, args.duration / 2),
        "ramp": lambda: max(3.0, args.duration / 6),
        "rounds": lambda: 1 if quick else 2,
        "in_flight": lambda: 500 if quick else 2000,
        "waiting": lambda: 200 if quick else 100_000,
        "sequential": lambda: 5 if quick else 20,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value())
    if quick:
        args.warm = min(args.warm, 20)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _fill(parser().parse_args(argv))
    detail = run(args)
    summary = detail["summary"]
    path = report.write(args.out, summary, detail)
    png = report.plot(args.out, detail)
    s = summary
    print(
        f"==> sagaflow {s['sagas_per_s']:.1f} sagas/s : raw {s['raw_sagas_per_s']:.1f} sagas/s = "
        f"{s['raw_ratio']:.2f}; unloaded step p50 {s['step_p50_ms_unloaded']:.1f} ms, saga p50 "
        f"{s['saga_p50_ms_unloaded']:.1f} ms; half-load step p99 "
        f"{s['step_p99_ms_half_load']:.1f} ms; CPU {s['cpu_ms_per_step']['total']:.3f} ms/step "
        f"(raw {s['raw_cpu_ms_per_step']['total']:.3f}); waiting "
        f"{s['waiting_kib_per_workflow']:.2f} KiB each, kill -9 -> ready "
        f"{s['waiting_rebuild_s']:.1f}s",
        flush=True,
    )
    print(f"==> wrote {path} and {png}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
