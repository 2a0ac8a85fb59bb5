"""The answer-model check at the grid cells' centres: residuals are measured minus interpolated, exact where the
model's transform makes the truth linear, and the cells the boundary crosses are the ones whose corners straddle δ."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tuner.bench_search.build_table import grid_axes
from tuner.bench_search.interpolation import compare, corner_range, main, markdown, seed_spread
from tuner.bench_search.table import Axis, Table

SCALE, DELTA = 0.02, 0.02


def world_table(axes: tuple[Axis, ...]) -> Table:
    """forget linear in the coordinates; drop = SCALE sinh(linear): linear once read as asinh(drop / SCALE)."""
    coords = np.meshgrid(*(a.coord(a.values) for a in axes), indexing="ij")
    forget = 0.6 - 0.1 * coords[1] + 0.02 * coords[0]
    drop = SCALE * np.sinh(-1.0 + 2.5 * coords[1] - 0.8 * coords[0] - 1.5 * coords[2])
    baseline = 0.95
    zeros = np.zeros_like(forget)
    return Table(axes=axes, along="remove_coef", forget=forget, forget_se=zeros, retain=baseline - drop,
                 retain_se=zeros, baseline_forget=0.9, baseline_retain=baseline, n_eval=100)


def axes(centred: bool) -> tuple[Axis, ...]:
    grid = (Axis("retain_coef", tuple(np.geomspace(0.3, 30, 4)), 0.3, 30, True),
            Axis("remove_coef", tuple(np.geomspace(0.1, 30, 5)), 0.1, 30, True),
            Axis("beta_kl", (0.0, 0.5, 1.0), 0.0, 1.0, False))
    if not centred:
        return grid
    centres = []
    for a in grid:
        c = a.coord(a.values)
        mid = (c[1:] + c[:-1]) / 2
        centres.append(Axis(a.name, tuple(10 ** mid if a.log else mid), a.low, a.high, a.log))
    return tuple(centres)


def test_the_matching_transform_is_exact_at_the_centres_and_linear_overstates_a_convex_drop():
    grid, centres = world_table(axes(False)), world_table(axes(True))
    exact, linear = compare(grid, centres, DELTA, SCALE), compare(grid, centres, DELTA, None)
    assert exact["all"]["cells"] == 3 * 4 * 2 and 0 < exact["crossing"]["cells"] < exact["all"]["cells"]
    assert exact["all"]["drop"]["rms"] < 1e-9 and exact["all"]["forget"]["rms"] < 1e-9
    assert linear["all"]["forget"]["rms"] < 1e-9  # forget is linear in every model
    # sinh is convex where the drop is positive: a chord lies above it, so at the crossing cells the measured drop is
    # below the linear model's on average
    assert linear["crossing"]["drop"]["mean"] < -0.003 and linear["crossing"]["drop"]["rms"] > 0.005
    assert "asinh(drop / 0.02) | crossing" in markdown([linear, exact])


def test_corner_range_is_the_min_max_and_mean_over_each_cells_corners():
    values = np.arange(2 * 3 * 1, dtype=float).reshape(2, 3, 1) ** 2  # [[0, 1, 4], [9, 16, 25]]
    lo, hi, mean = corner_range(values)
    assert lo.shape == hi.shape == mean.shape == (1, 2, 1)
    assert lo[0, :, 0].tolist() == [0.0, 1.0] and hi[0, :, 0].tolist() == [16.0, 25.0]
    assert mean[0, :, 0].tolist() == [(0 + 1 + 9 + 16) / 4, (1 + 4 + 16 + 25) / 4]


def test_centred_grid_axes_are_the_midpoints_in_each_axis_coordinate():
    grid, centred = grid_axes("miniworld", (7, 7, 4)), grid_axes("miniworld", (7, 7, 4), centred=True)
    for g, c in zip(grid, centred, strict=True):
        assert len(c.values) == len(g.values) - 1 and (c.low, c.high) == (g.low, g.high)
        assert np.allclose(c.coord(c.values), (g.coord(g.values)[1:] + g.coord(g.values)[:-1]) / 2)


@pytest.mark.parametrize("argv, names", [(["--table", "world0", "--seed", "7"], "--seed 7"),
                                         (["--table", "world1", "--drop-scales", "5"], "--drop-scales [5.0]")])
def test_bad_input_is_one_error_line_before_anything_is_built(argv, names, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_TUNER_CACHE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("python -m tuner.bench_search.interpolation: error: " + names)
    assert not any(tmp_path.iterdir())


def test_seed_spread_sees_roughness_between_grid_points_and_none_in_a_shift():
    """Seed tables that differ by a constant shift keep their sd between grid points (nothing to add back); tables
    whose forget deviations are independent from point to point lose sd there, and ``restore_seed_var`` adds it."""
    grid, centres = world_table(axes(False)), world_table(axes(True))
    shifted = Table.mean_of([dataclasses.replace(grid, forget=grid.forget + d) for d in (-0.05, 0.0, 0.05)])
    smooth = seed_spread(shifted, centres, DELTA)["all"]
    assert smooth["forget"]["corners"] == pytest.approx(5.0) == pytest.approx(smooth["forget"]["landscapes_at_centres"])
    assert smooth["forget_added"] == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    rough = Table.mean_of([dataclasses.replace(grid, forget=grid.forget + rng.normal(0, 0.05, grid.forget.shape))
                           for _ in range(3)])
    spread = seed_spread(rough, centres, DELTA)["all"]
    assert spread["forget"]["landscapes_at_centres"] < 0.7 * spread["forget"]["corners"]
    assert spread["forget_added"] > 0.5 * spread["forget"]["corners"]
