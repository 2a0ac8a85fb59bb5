"""What the report's figures show, read from the matplotlib figures before they become PNG bytes: every scored
trial where its accuracies / coefficients put it, the baseline, the P = 0.5 boundary line with its 0.1-0.9 band,
the extrapolated region, one curve per trial. The PNG bytes themselves decode to images of the figure's size."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.contour import ContourSet

from search_spaces.base import Boundary
from trainables.evaluation.result import TaskScore
from tuner.analysis import report_map, report_plots
from tuner.analysis.boundary import analyse
from tuner.analysis.run_data import load_run
from tuner.records.schema import BASELINE_ID, TrialRow


def _score(acc: float, n: int = 150) -> TaskScore:
    return TaskScore(task="t", acc=acc, stderr=math.sqrt(acc * (1 - acc) / (n - 1)), n=n)


@pytest.fixture
def run(tmp_path: Path):
    """A 4 x 5 coefficient grid: forget falls above remove/retain 0.05, retain is damaged above 0.5."""
    rows = [TrialRow(trial_id=BASELINE_ID, status="done", forget=_score(0.70), retain=_score(0.80))]
    for i, (ret, rem) in enumerate((r, m) for r in (1.0, 3.0, 10.0, 30.0) for m in (0.1, 0.5, 2.0, 8.0, 30.0)):
        q = rem / ret
        rows.append(TrialRow(trial_id=f"t{i:02d}", status="done", forget=_score(0.70 if q < 0.05 else 0.27),
                             retain=_score(0.80 if q <= 0.5 else 0.45),
                             params={"retain_coef": ret, "remove_coef": rem, "beta_kl": 0.5}))
        (tmp_path / "trials" / rows[-1].trial_id).mkdir(parents=True)
        (tmp_path / "trials" / rows[-1].trial_id / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": s, "loss": 1 + q / (1 + s), "cb_loss": 1 / (1 + q * s)}) + "\n"
                    for s in (8, 16, 24)))
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    data = load_run(tmp_path)
    return data, analyse(data.trials, data.baseline, 0.02, 0.95)


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures the plot functions render, in order (the real PNG is still returned)."""
    captured = []
    real = report_plots.png

    def keep(fig, labelled):
        captured.append(fig)
        return real(fig, labelled)

    monkeypatch.setattr(report_plots, "png", keep)
    return captured


def _points(ax) -> set[tuple[float, float]]:
    """Every plotted marker position of the axes, rounded."""
    out = set()
    for line in ax.get_lines():
        out |= {(round(float(x), 6), round(float(y), 6)) for x, y in zip(line.get_xdata(), line.get_ydata(),
                                                                           strict=True)}
    for collection in ax.collections:
        if isinstance(collection, PathCollection):
            out |= {(round(float(x), 6), round(float(y), 6)) for x, y in collection.get_offsets()}
    return out


def _decodes_to(png: bytes, fig) -> None:
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    width, height = fig.get_size_inches() * fig.dpi
    assert image.shape[:2] == (round(height), round(width)) and np.ptp(image[..., :3]) > 0.5


def test_tradeoff_shows_every_trial_and_the_baseline(run, figures):
    data, a = run
    png = report_plots.tradeoff_png(data.trials, data.baseline, a)
    (fig,) = figures
    _decodes_to(png.png, fig)
    (ax,) = fig.axes
    points = _points(ax)
    for t in [data.baseline, *data.trials]:
        assert (round(100 * t.forget.acc, 6), round(100 * t.retain.acc, 6)) in points, t.trial_id
    labels = ax.get_legend_handles_labels()[1]
    assert "baseline" in labels and "Pareto front" in labels
    assert {s.value for s in a.states.values()} <= set(labels)


def _contours(ax, levels: list[float]) -> list[ContourSet]:
    return [c for c in ax.collections if isinstance(c, ContourSet) and list(c.levels) == levels]


def test_harmless_map_draws_the_boundary_and_its_band_under_the_trials(run, figures):
    data, a = run
    png = report_map.harmless_map_png(data.trials, a)
    (fig,) = figures
    _decodes_to(png.png, fig)
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert a.fit is not None and _contours(ax, [0.5])
    (band,) = [c for c in _contours(ax, [0.1, 0.9]) if c.filled]
    assert band.hatches == report_map.BAND["hatches"]
    assert not _contours(ax, [0.5, 1.5])  # the 4 x 5 grid leaves no point of the panel far from a trial
    points = _points(ax)
    for t in data.trials:
        assert (t.params["retain_coef"], t.params["remove_coef"]) in points, t.trial_id


def test_harmless_map_marks_where_the_fit_extrapolates(run, figures):
    """Without the grid's middle columns (retain_coef 3 and 10) the middle of the panel is far from every trial."""
    data, _ = run
    trials = [t for t in data.trials if t.params["retain_coef"] in (1.0, 30.0)]
    a = analyse(trials, data.baseline, 0.02, 0.95)
    report_map.harmless_map_png(trials, a)
    (far,) = _contours(figures[0].axes[0], [0.5, 1.5])
    (path,) = far.get_paths()
    assert path.contains_point((5.5, 1.0))
    assert not any(path.contains_point((t.params["retain_coef"], t.params["remove_coef"])) for t in trials)


def test_harmless_map_of_a_boundary_without_a_ratio(run, figures):
    """Along remove_coef, sliced by kl_temperature: one panel over (remove_coef, kl_temperature)."""
    data, _ = run
    trials = [dataclasses.replace(t, params={"remove_coef": t.params["remove_coef"],
                                             "kl_temperature": t.params["retain_coef"] / 10}) for t in data.trials]
    a = analyse(trials, data.baseline, 0.02, 0.95, boundary=Boundary(along="remove_coef", slice_by="kl_temperature"))
    report_map.harmless_map_png(trials, a)
    ax = figures[0].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale(), ax.get_yscale()) == (
        "remove_coef", "kl_temperature", "log", "linear")
    assert a.fit is not None and _contours(ax, [0.5])
    assert {(t.params["remove_coef"], t.params["kl_temperature"]) for t in trials} <= _points(ax)


def test_curves_have_one_line_per_trial_and_metric(run, figures):
    data, a = run
    png = report_plots.curves_png(data.curves, a.states)
    (fig,) = figures
    _decodes_to(png.png, fig)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {"loss", "cb_loss"}
    for metric, ax in panels.items():
        lines = {tuple(line.get_ydata()) for line in ax.get_lines() if len(line.get_xdata())}
        expected = {tuple(rec[metric] for rec in curve) for curve in data.curves.values()}
        assert lines == expected and len(expected) == len(data.trials), metric


def test_every_point_carries_its_trial_id_and_the_baseline_star_is_hollow_underneath(run, figures):
    data, a = run
    plot = report_plots.tradeoff_png(data.trials, data.baseline, a)
    harmless = report_map.harmless_map_png(data.trials, a)
    tradeoff_fig, map_fig = figures
    for fig, p in ((tradeoff_fig, plot), (map_fig, harmless)):
        labels = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert sorted(labels) == sorted(t.trial_id for t in data.trials) and p.labelled == len(labels)
        assert p.width == round(fig.get_figwidth() * fig.dpi) <= 1150  # shown 1:1 in the 1200 px page
    star = next(line for line in tradeoff_fig.axes[0].get_lines() if line.get_marker() == "*")
    assert star.get_markerfacecolor() == "none" and star.get_zorder() < 3
