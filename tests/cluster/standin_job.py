"""Stand-in for `python -m tuner.run` in the SLURM tests: a Ray driver that joins the cluster,
runs a few remote tasks and writes what it saw into a shared directory.

    python -m tests.cluster.standin_job --out DIR [--tasks N]

It writes DIR/standin.json (atomically) and prints `STANDIN OK <n> tasks`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

ENV_KEYS = (
    "RAY_AUTH_MODE",
    "RAY_TMPDIR",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "MLFLOW_TRACKING_URI",
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tasks", type=int, default=4)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init()  # RAY_ADDRESS (set by ray job submit / the sbatch driver mode) joins the cluster

    @ray.remote(num_cpus=0.5)
    def probe(i: int) -> dict:
        node = ray.get_runtime_context().get_node_id()
        env = {k: os.environ.get(k) for k in ENV_KEYS}
        return {"i": i, "sq": i * i, "host": socket.gethostname(), "node": node, "env": env}

    # round-robin over the alive nodes, so every node runs tasks
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    on_node = [NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=False) for i in range(args.tasks)]
    results = ray.get([probe.options(scheduling_strategy=s).remote(i) for i, s in enumerate(on_node)])
    ctx = ray.get_runtime_context()
    info = {
        "tasks": len(results),
        "sum_sq": sum(r["sq"] for r in results),
        "hosts": sorted({r["host"] for r in results}),
        "task_nodes": len({r["node"] for r in results}),
        "task_tmpdirs": sorted({r["env"]["RAY_TMPDIR"] or "" for r in results}),
        "task_env": results[0]["env"],
        "driver_env": {k: os.environ.get(k) for k in ENV_KEYS},
        "gcs_address": ctx.gcs_address,
        "session_dir": ray._private.worker.global_worker.node.get_session_dir_path(),
        "nodes": len(nodes),
        "cwd": os.getcwd(),
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    ray.shutdown()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "standin.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(args.out / "standin.json")
    print(f"STANDIN OK {info['tasks']} tasks in {info['wall_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
