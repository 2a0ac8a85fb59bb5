"""The named tables the replay benchmark runs on, and the split between calibration and held-out ones.

    python -m tuner.bench_search --tables calibration          # world 0 + the synthetic default world
    python -m tuner.bench_search --tables held-out --seeds 20  # what acceptance is reported on
    python -m tuner.bench_search --tables world1 no-harmless    # single tables by name

The boundary sampler's constants (``BoundarySamplerConfig``, ``StopRule``, ``CONFIDENT``) are tuned on the
``calibration`` tables only; the ``held-out`` ones (other worlds on another grid shape, the long-training
regime, the synthetic edge cases) are read for reporting, never for tuning. A table is built the first time it
is named (``build_table``: cached, resumable), a synthetic one is computed. The tables of worlds 0, 1 and 2 are
built with training seeds 0, 1 and 2 (the trials' ``seed``: LoRA init and batch order) and read as their mean
(``Table.mean_of``): one seed's table is one draw of a landscape that the seed shifts as a whole
(docs/benchmarks.md#the-replay-benchmark), so the truth is the seeds' mean and a replay answers each trial from
its training seed's landscape (``answers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tuner.bench_search.synthetic import WORLDS
from tuner.bench_search.table import Table

ROLES = ("calibration", "held-out")
LONG_TRAINING = ("steps=120", "per_device_batch=16", "lr=0.002", "lr_schedule=linear")  # the 120 x 16 regime


@dataclass(frozen=True)
class TableSpec:
    """A mini-world table (``preset`` on ``grid`` with ``overrides``) or a synthetic world (``synthetic``)."""

    role: str
    grid: tuple[int, int, int] = (7, 7, 4)
    overrides: tuple[str, ...] = ()  # TrainConfig key=value, as on the command line
    preset: str = "miniworld"
    synthetic: str | None = None  # a name in synthetic.WORLDS
    train_seeds: tuple[int, ...] = (0,)  # the trials' training seeds: one table each, read as their mean

    def load(self, workers: int = 1, delta: float | None = None, snap: bool = False) -> Table:
        """The table: computed (synthetic; its frozen noise draw only with ``snap``) or built / reused."""
        if self.synthetic is not None:
            world = WORLDS[self.synthetic] if delta is None else replace(WORLDS[self.synthetic], delta=delta)
            return world.table(*self.grid, seed=0 if snap else None)
        tables = [self.seed_table(seed, workers) for seed in self.train_seeds]
        return tables[0] if len(tables) == 1 else Table.mean_of(tables)

    def seed_table(self, seed: int, workers: int = 1, centred: bool = False) -> Table:
        """The mini-world table trained with training seed ``seed`` (built / reused); ``centred``: on the grid
        cells' centres (``build_table``), where the answer model interpolates."""
        from trainables.train import parse_overrides
        from tuner.bench_search.build_table import build_table

        overrides = parse_overrides(list(self.overrides)) | {"seed": seed}
        return build_table(self.preset, self.grid, workers=workers, overrides=overrides, centred=centred)


SEEDS = (0, 1, 2)
TABLES = {
    "world0": TableSpec("calibration", train_seeds=SEEDS),
    "synthetic": TableSpec("calibration", synthetic="default"),
    "world1": TableSpec("held-out", grid=(6, 8, 3), overrides=("world_seed=1",), train_seeds=SEEDS),
    "world2": TableSpec("held-out", grid=(6, 8, 3), overrides=("world_seed=2",), train_seeds=SEEDS),
    "world0-long": TableSpec("held-out", overrides=LONG_TRAINING),
    **{name: TableSpec("held-out", synthetic=name) for name in WORLDS if name != "default"},
}


def select(names: list[str]) -> dict[str, TableSpec]:
    """Table names and role names (``calibration``, ``held-out``) -> the named tables, in registry order."""
    unknown = [n for n in names if n not in TABLES and n not in ROLES]
    if unknown:
        raise ValueError(f"unknown table {', '.join(unknown)}: choose from {', '.join((*ROLES, *TABLES))}")
    return {k: t for k, t in TABLES.items() if k in names or t.role in names}
