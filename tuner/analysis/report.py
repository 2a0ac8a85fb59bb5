"""Render the boundary report of one search run.

    python -m tuner.report RUN_DIR [--delta 0.02] [--confidence 0.95]

reads   RUN_DIR/results.jsonl                    one TrialRow.to_dict() per line; the last line per
                                                 trial_id wins; trial_id "baseline" is the unadapted model
        RUN_DIR/trials/<trial_id>/metrics.jsonl  optional training curves: {"step": 32, "loss": ...} per line
        RUN_DIR/run_config.json                  optional: space, preset, seed, delta, confidence, ...
writes  RUN_DIR/report/report.md, report.html (self-contained), *.png, boundary.json; each atomically
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.config import ConfigError
from trainables.evaluation.result import TaskScore
from trainables.preflight import check_ranges
from tuner.analysis.boundary import BoundaryAnalysis, analyse
from tuner.analysis.boundary_fit import FEATURES
from tuner.analysis.report_plots import CURVE_METRICS, STATE_STYLE, curves_png, harmless_map_png, tradeoff_png
from tuner.records.schema import BASELINE_ID, TrialRow

REPORT_DIR = "report"
DEFAULT_DELTA, DEFAULT_CONFIDENCE = 0.02, 0.95
FIGURES = {  # file name -> (section title, caption)
    "tradeoff.png": ("Forget vs retain", "Each scored trial ± stderr, coloured by outcome state; dashed: "
                     "Pareto front; star: baseline; green band: within delta of the baseline retain."),
    "harmless_map.png": ("Harmless region", "Fitted P(harmless) over the coefficients (log axes); black "
                         "line: P = 0.5, the estimated boundary; dashed: 0.1 and 0.9."),
    "training_curves.png": ("Training curves", "Logged training metrics per trial, coloured by state."),
}
CSS = """body{font:15px/1.5 system-ui,sans-serif;color:#222;max-width:1200px;margin:2em auto;padding:0 1em}
nav a{margin-right:1em}.verdict{background:#f4f8f4;border-left:4px solid #2ca02c;padding:.8em 1em}
img{max-width:100%;border:1px solid #ddd}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}th{background:#eee}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
tr>:first-child,tr>:nth-child(2),tr>:nth-child(3){text-align:left}td:last-child{white-space:normal}
.chip{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em}"""


class ReportInputError(Exception):
    """The run directory cannot be read; nothing was written."""


@dataclass(frozen=True)
class RunData:
    """What a run directory holds: trials in order of first appearance, the baseline row, curves, config."""

    trials: list[TrialRow]
    baseline: TrialRow | None
    curves: dict[str, list[dict[str, Any]]]
    config: dict[str, Any]


def load_run(run_dir: Path) -> RunData:
    """Read results.jsonl (last line per trial_id wins), metrics.jsonl curves and run_config.json."""
    results = run_dir / "results.jsonl"
    if not run_dir.is_dir():
        raise ReportInputError(f"run directory {run_dir} does not exist")
    if not results.is_file():
        raise ReportInputError(f"{results} not found; is {run_dir} a search run directory?")
    rows: dict[str, TrialRow] = {}
    for number, line in enumerate(results.read_text().splitlines(), start=1):
        try:
            row = TrialRow.from_dict(json.loads(line)) if line.strip() else None
        except (ValueError, KeyError, TypeError) as e:
            raise ReportInputError(f"{results}:{number} is not a TrialRow: {e}") from e
        if row is not None:
            rows[row.trial_id] = row  # a later line replaces the row but keeps its position
    config_path = run_dir / "run_config.json"
    try:
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    except ValueError as e:
        raise ReportInputError(f"{config_path} is not valid JSON: {e}") from e
    baseline = rows.pop(BASELINE_ID, None)
    curves = {t: _read_curve(run_dir / "trials" / t / "metrics.jsonl") for t in rows}
    return RunData(list(rows.values()), baseline, {t: c for t, c in curves.items() if c}, config)


def render_report(run_dir: str | Path, delta: float | None = None, confidence: float | None = None) -> Path:
    """Analyse the run and write RUN_DIR/report/; returns that directory. ``delta`` / ``confidence``
    default to run_config.json's values, else 0.02 (2 points) / 0.95."""
    run_dir = Path(run_dir)
    data = load_run(run_dir)
    if delta is None:
        delta = float(data.config.get("delta", DEFAULT_DELTA))
    if confidence is None:
        confidence = float(data.config.get("confidence", DEFAULT_CONFIDENCE))
    from tuner.boundary_search.report_fit import run_model_fit

    base_retain = data.baseline.retain.acc if data.baseline and data.baseline.retain else None
    a = analyse(data.trials, data.baseline, delta, confidence, model=run_model_fit(run_dir, data.config, base_retain,
                delta), stop_reason=data.config.get("extra", {}).get("stop_reason", ""))
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    pngs = {"tradeoff.png": tradeoff_png(data.trials, data.baseline, a),
            "harmless_map.png": harmless_map_png(data.trials, a),
            "training_curves.png": curves_png(data.curves, a.states)}
    for name, png in pngs.items():  # a figure with nothing to show is dropped, also from an earlier render
        if png:
            _write_atomic(out / name, png)
        else:
            (out / name).unlink(missing_ok=True)
    figures = {name: png for name, png in pngs.items() if png}
    tables = _tables(data, a)
    title = f"Boundary report: {run_dir.resolve().name}"
    _write_atomic(out / "boundary.json", json.dumps(a.to_dict(), indent=1, allow_nan=False).encode())
    _write_atomic(out / "report.md", _markdown(title, a, figures, tables).encode())
    _write_atomic(out / "report.html", _html(title, a, figures, tables).encode())
    return out


Table = tuple[str, list[str], list[list[str]]]  # title, header, rows


def _tables(data: RunData, a: BoundaryAnalysis) -> list[Table]:
    """Results (baseline first, every trial), not-scored trials with their errors, and the run config."""
    rows = ([data.baseline] if data.baseline else []) + data.trials
    metrics = {t.trial_id: t.train_metrics or _last(data.curves.get(t.trial_id, [])) for t in rows}
    params = _keys([t.params for t in rows], FEATURES)
    metric_keys = _keys(list(metrics.values()), CURVE_METRICS)
    base = data.baseline if data.baseline and data.baseline.scored else None
    alt = next((t.alt_format for t in rows if t.alt_format), "")
    notes = {t: ["tied"] for t in a.tied} | ({a.recommended: ["recommended"]} if a.recommended else {})
    results = []
    for t in rows:
        state = a.states.get(t.trial_id)
        note = ", ".join(notes.get(t.trial_id, []) + (["Pareto"] if t.trial_id in a.pareto else []))
        p = a.fit.p_at(t.params) if a.fit and not t.is_baseline else None
        results.append([t.trial_id, state.value if state else "—", t.status,
                        *(_cell(t.params.get(k)) for k in params),
                        *(_cell(metrics[t.trial_id].get(k)) for k in metric_keys),
                        _acc(t.forget), _delta(t.forget, base and base.forget, t.is_baseline),
                        _acc(t.retain), _delta(t.retain, base and base.retain, t.is_baseline),
                        *((_acc(t.forget_alt), _acc(t.retain_alt)) if alt else ()),
                        "" if p is None else f"{p:.2f}", note])
    header = ["trial", "state", "status", *params, *metric_keys, "forget %", "Δ forget", "retain %",
              "Δ retain", *((f"forget % ({alt})", f"retain % ({alt})") if alt else ()), "P(harmless)", "note"]
    tables = [("Results", header, results)]
    failed = [[t.trial_id, t.status, t.error[:300]] for t in rows if t.trial_id in a.unscored]
    if failed:
        tables.append(("Not scored", ["trial", "status", "error"], failed))
    if data.config:
        tables.append(("Run config", ["key", "value"], [[k, _cell(v)] for k, v in data.config.items()]))
    return tables


def _markdown(title: str, a: BoundaryAnalysis, figures: dict[str, bytes], tables: list[Table]) -> str:
    parts = [f"# {title}", "## Verdict", a.verdict()]
    for name in figures:
        section, caption = FIGURES[name]
        parts += [f"## {section}", f"![{section}]({name})", f"*{caption}*"]
    for caption, header, rows in tables:
        lines = [header, ["---"] * len(header), *rows]
        cells = [[c.replace("|", "\\|").replace("\n", " ") for c in line] for line in lines]
        parts += [f"## {caption}", "\n".join("| " + " | ".join(line) + " |" for line in cells)]
    return "\n\n".join(parts) + "\n"


def _html(title: str, a: BoundaryAnalysis, figures: dict[str, bytes], tables: list[Table]) -> str:
    """One self-contained page: inline CSS, PNGs as data URIs, in-page links only."""
    sections = [("verdict", "Verdict", f'<p class="verdict">{html.escape(a.verdict())}</p>')]
    for name, png in figures.items():
        section, caption = FIGURES[name]
        img = f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{section}">'
        sections.append((name.removesuffix(".png").replace("_", "-"), section,
                         f"<figure>{img}<figcaption>{caption}</figcaption></figure>"))
    for caption, header, rows in tables:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>" for r in rows)
        sections.append((caption.lower().replace(" ", "-"), caption,
                         f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'))
    nav = " ".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t, _ in sections)
    body = "\n".join(f'<section id="{i}"><h2>{html.escape(t)}</h2>{c}</section>' for i, t, c in sections)
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style>'
    return (f'<!doctype html>\n<html lang="en"><head>{head}</head>\n<body><h1>{html.escape(title)}</h1>'
            f"<nav>{nav}</nav>\n{body}\n</body></html>\n")


def _html_cell(text: str) -> str:
    """Escaped cell text; an outcome state gets its plot colour as a chip."""
    colour = next((c for s, (c, _) in STATE_STYLE.items() if s and s.value == text), None)
    chip = f'<span class="chip" style="background:{colour}"></span>' if colour else ""
    return chip + html.escape(text)


def _keys(dicts: list[dict[str, Any]], first: tuple[str, ...]) -> list[str]:
    """Union of keys: those in ``first`` in that order, then the rest in order of appearance."""
    seen = list(dict.fromkeys(k for d in dicts for k in d if k != "step"))
    return [k for k in first if k in seen] + [k for k in seen if k not in first]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else v if isinstance(v, str) else json.dumps(v)


def _acc(s: TaskScore | None) -> str:
    return f"{100 * s.acc:.1f} ± {100 * s.stderr:.1f}" if s else ""


def _delta(s: TaskScore | None, base: TaskScore | None, is_baseline: bool) -> str:
    return f"{100 * (s.acc - base.acc):+.1f}" if s and base and not is_baseline else ""


def _last(curve: list[dict[str, Any]]) -> dict[str, Any]:
    return curve[-1] if curve else {}


def _read_curve(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records in order; a torn last line (crash mid-write) is skipped."""
    records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return [r for r in records if isinstance(r, dict)]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, then os.replace: readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tuner.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="search run directory holding results.jsonl")
    parser.add_argument("--delta", type=float,
                        help="largest harmless retain drop, fraction (default: run_config.json, else 0.02)")
    parser.add_argument("--confidence", type=float,
                        help="one-sided test confidence (default: run_config.json, else 0.95)")
    args = parser.parse_args(argv)
    try:
        check_ranges({"--delta": args.delta, "--confidence": args.confidence})
        out = render_report(args.run_dir, args.delta, args.confidence)
    except (ReportInputError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(out / "report.html")
    print(out / "report.md")
