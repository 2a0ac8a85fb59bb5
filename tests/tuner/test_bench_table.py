"""The dense-table builder on a tiny grid of the small mini-world: real training + lm-eval, cached, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tuner.bench_search.build_table import build_table, table_dir


@pytest.mark.slow
def test_build_tiny_table_cache_and_resume(tmp_path: Path):
    table = build_table("miniworld-small", (2, 2, 1), workers=2, root=tmp_path)
    assert table.forget.shape == (2, 2, 1) and table.size == 4
    assert ((table.forget >= 0) & (table.forget <= 1)).all() and ((table.retain >= 0) & (table.retain <= 1)).all()
    assert (table.retain_se >= 0).all() and table.n_eval > 0 and 0 < table.baseline_retain <= 1
    out = table_dir("miniworld-small", (2, 2, 1), {}, tmp_path)
    assert out.name.startswith("miniworld-small-")  # keyed by the world
    records = [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["history"] for r in records)  # training curves kept
    # cached: loaded without training; resumable: a lost point is redone, the others are kept
    assert build_table("miniworld-small", (2, 2, 1), root=tmp_path).forget.tolist() == table.forget.tolist()
    (out / "table.json").unlink()
    (out / "points.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:3]) + '{"torn')
    again = build_table("miniworld-small", (2, 2, 1), workers=1, root=tmp_path)
    kept = [r["index"] for r in records[:3]]
    assert np.allclose(again.forget.ravel()[kept], table.forget.ravel()[kept])
    assert len((out / "points.jsonl").read_text().splitlines()) == 5  # 3 kept + the torn line + 1 redone


def test_every_released_table_is_a_named_seed_table_and_is_read_without_training(tmp_path: Path):
    """Each file in ``released/`` is the table of one training seed of a ``TABLES`` entry (same directory name,
    so never stale), of that entry's grid; with an empty cache ``build_table`` returns it as released."""
    from trainables.train import parse_overrides
    from tuner.bench_search.build_table import RELEASED
    from tuner.bench_search.table import Table
    from tuner.bench_search.tables import TABLES

    seed_tables = {table_dir(spec.preset, spec.grid, parse_overrides(list(spec.overrides)) | {"seed": seed}).name:
                   (spec, seed) for spec in TABLES.values() if spec.synthetic is None for seed in spec.train_seeds}
    released = sorted(RELEASED.glob("*.json"))
    assert released, "no released table"
    for path in released:
        assert path.stem in seed_tables, f"{path.name} is no TABLES seed table (stale: rebuild and release it)"
        spec, seed = seed_tables[path.stem]
        table = Table.load(path)
        assert table.forget.shape == spec.grid and table.key == path.stem
        got = build_table(spec.preset, spec.grid, overrides=parse_overrides(list(spec.overrides)) | {"seed": seed},
                          root=tmp_path)
        assert got.forget.tolist() == table.forget.tolist()
        assert not any(tmp_path.rglob("points.jsonl"))  # nothing trained
