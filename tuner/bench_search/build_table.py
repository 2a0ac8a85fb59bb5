"""The dense table of a mini-world: every point of a grid over ``kl_boundary``'s ranges, trained and scored
bare (``trainables.train_loop.run_in_process``: the real training + lm-eval code, no Ray/Tune/MLflow), on a
spawn process pool, with a progress bar.

    table = build_table("miniworld", shape=(7, 7, 4), workers=16)

Cached in ``cache_root()/bench_search/<world key>-<grid and config hash>/``: ``points.jsonl`` (one line per
finished point: params, forget/retain TaskScores, training curve), ``baseline.json`` and ``table.json``.
A rerun skips finished points (resumable); a changed world has another key, so its table is built anew.

Released tables: a table built once and committed as ``released/<the same directory name>.json`` (its
``table.json``) is read when the cache has none, so every machine replays the same numbers (training's float
rounding differs from CPU to CPU, and the replays' trajectories follow it) and no machine spends the hours
again. A changed world, grid or training config has another name, so a stale release is never read. Release a
table built here: ``cp <cache dir>/table.json tuner/bench_search/released/<cache dir name>.json``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from search_spaces import get_space
from trainables.evaluation.result import TaskScore
from tuner.bench_search.table import Axis, Table

SPACE = "kl_boundary"
RELEASED = Path(__file__).parent / "released"


def grid_axes(preset: str, shape: tuple[int, ...], centred: bool = False) -> tuple[Axis, ...]:
    """Log grids for log-uniform params, linear ones otherwise, spanning the space's ranges for ``preset``;
    ``centred``: the midpoints of consecutive grid values instead (in the axis' coordinate: the cells' centres)."""
    params = get_space(SPACE).params_for(preset)
    if len(params) != len(shape):
        raise ValueError(f"{SPACE} searches {len(params)} params for {preset}; got a {len(shape)}-d grid shape")
    axes = []
    for p, n in zip(params, shape, strict=True):
        log = p.kind == "loguniform"
        values = np.geomspace(p.low, p.high, n) if log else np.linspace(p.low, p.high, n)
        if centred and n > 1:
            values = np.sqrt(values[1:] * values[:-1]) if log else (values[1:] + values[:-1]) / 2
        axes.append(Axis(p.name, tuple(float(v) for v in values), p.low, p.high, log))
    return tuple(axes)


def table_dir(preset: str, shape: tuple[int, ...], overrides: dict[str, Any], root: Path | None = None,
              centred: bool = False) -> Path:
    from trainables.miniworld.build import cache_root
    from trainables.model import miniworld

    cfg = _config(preset, overrides, {})
    world = miniworld(cfg)
    if world is None:
        raise ValueError(f"preset {preset!r} is not a mini-world: the dense table is built for mini-worlds only")
    blob = json.dumps({"axes": [a.__dict__ for a in grid_axes(preset, shape, centred)], "config": cfg.to_dict()},
                      sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    return (root or cache_root()) / "bench_search" / f"{world.config.key()}-{digest}"


def build_table(preset: str, shape: tuple[int, ...] = (7, 7, 4), workers: int = 1,
                overrides: dict[str, Any] | None = None, root: Path | None = None, centred: bool = False) -> Table:
    """Build (or finish, or just load: cached, else released) the table of ``preset``'s world; ``centred``: on the
    grid cells' centres."""
    overrides = dict(overrides or {})
    out = table_dir(preset, shape, overrides, root, centred)
    for built in (out / "table.json", RELEASED / f"{out.name}.json"):
        if built.is_file():
            return Table.load(built)
    out.mkdir(parents=True, exist_ok=True)
    axes = grid_axes(preset, shape, centred)
    points = [dict(zip((a.name for a in axes), p, strict=True)) for p in _product(axes)]
    done = _read_points(out / "points.jsonl")
    todo = [(i, p) for i, p in enumerate(points) if i not in done]
    if not (out / "baseline.json").is_file():
        todo.insert(0, (-1, {}))
    text = (out / "points.jsonl").read_text() if (out / "points.jsonl").is_file() else ""
    with ProcessPoolExecutor(max(1, workers), mp_context=get_context("spawn")) as pool, \
            open(out / "points.jsonl", "a") as sink:
        if text and not text.endswith("\n"):
            sink.write("\n")  # end a torn last line, so the next record starts on its own line
        futures = {pool.submit(run_point, preset, overrides, params, i < 0): (i, params) for i, params in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), desc=f"table {out.name}", file=sys.stderr):
            i, params = futures[fut]
            record = {"index": i, "params": params, **fut.result()}
            if i < 0:
                (out / "baseline.json").write_text(json.dumps(record))
            else:
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                done[i] = record
    table = _assemble(axes, done, json.loads((out / "baseline.json").read_text()), out.name)
    table.save(out / "table.json")
    return table


def run_point(preset: str, overrides: dict[str, Any], params: dict[str, float], baseline: bool) -> dict[str, Any]:
    """One grid point trained and scored in this (worker) process; ``baseline`` scores the unadapted model."""
    import torch

    from trainables.offline import offline_env, set_offline_env

    torch.set_num_threads(1)
    cfg = _config(preset, overrides, params)
    set_offline_env(offline_env(cfg))
    from trainables.evaluation.result import EvalResult
    from trainables.evaluation.stage import evaluate_model
    from trainables.evaluation.tasks import task_set_for
    from trainables.model import load_base_model, load_tokenizer
    from trainables.train_loop import run_in_process

    if baseline:
        ev = evaluate_model(load_base_model(cfg, torch.device("cpu")), load_tokenizer(cfg), task_set_for(cfg),
                            batch_size=cfg.eval_batch_size, limit=cfg.eval_limit or None,
                            add_bos_token=cfg.add_bos_token)
        return {"forget": ev.forget.to_dict(), "retain": ev.retain.to_dict()}
    final = run_in_process(cfg, evaluate=True)
    if "eval" not in final:  # diverged: the worst case, as the search reports it
        worst = {"forget": TaskScore("forget", 1.0, 0.0, 0), "retain": TaskScore("retain", 0.0, 0.0, 0)}
        return {k: v.to_dict() for k, v in worst.items()} | {"diverged": True, "history": final.get("history", [])}
    ev = EvalResult.from_dict(final["eval"])
    return {"forget": ev.forget.to_dict(), "retain": ev.retain.to_dict(), "diverged": False,
            "history": final.get("history", [])}


def _config(preset: str, overrides: dict[str, Any], params: dict[str, float]) -> Any:
    from trainables.presets import load_preset

    space = get_space(SPACE)
    return load_preset(preset, overrides).with_overrides({**space.fixed_for(preset), **params})


def _product(axes: tuple[Axis, ...]) -> list[tuple[float, ...]]:
    grids = np.meshgrid(*(np.asarray(a.values) for a in axes), indexing="ij")
    return list(zip(*(g.ravel() for g in grids), strict=True))


def _read_points(path: Path) -> dict[int, dict[str, Any]]:
    """Finished points by index; a torn last line (crash mid-write) is skipped and redone."""
    out = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        out[int(record["index"])] = record
    return out


def _assemble(axes: tuple[Axis, ...], done: dict[int, dict[str, Any]], base: dict[str, Any], key: str) -> Table:
    shape = tuple(len(a.values) for a in axes)
    arrays = {k: np.zeros(int(np.prod(shape))) for k in ("forget", "forget_se", "retain", "retain_se")}
    for i, record in done.items():
        for side in ("forget", "retain"):
            arrays[side][i] = record[side]["acc"]
            arrays[f"{side}_se"][i] = record[side]["stderr"]
    return Table(axes=axes, along="remove_coef", **{k: v.reshape(shape) for k, v in arrays.items()},
                 baseline_forget=base["forget"]["acc"], baseline_retain=base["retain"]["acc"],
                 n_eval=int(base["retain"]["n"]), key=key)
