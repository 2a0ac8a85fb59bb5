"""Render the boundary report of one search run.

    python -m tuner.report RUN_DIR [--delta 0.02] [--confidence 0.95]

reads   the run directory (``tuner.analysis.run_data``)
writes  RUN_DIR/report/report.md, report.html (self-contained), *.png, boundary.json; each atomically

The page leads with the verdict (``tuner.analysis.verdict``), then the figures, then the tables
(``tuner.analysis.report_tables``): outcomes first, training metrics second.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
from pathlib import Path

from search_spaces.facts import DEFAULT_CONFIDENCE, DEFAULT_DELTA
from trainables.config import ConfigError
from trainables.preflight import check_ranges
from tuner.analysis.axes import run_boundary
from tuner.analysis.boundary import analyse
from tuner.analysis.report_map import NEAR, harmless_map_png
from tuner.analysis.report_plots import STATE_STYLE, Plot, curves_png, tradeoff_png
from tuner.analysis.report_tables import OUTCOMES, Table, tables
from tuner.analysis.run_data import ReportInputError, load_run
from tuner.analysis.verdict import Verdict, build_verdict
from tuner.boundary_search.stopping import after_stop

REPORT_DIR = "report"
FIGURES = {  # file name -> (section title, caption)
    "tradeoff.png": ("Forget vs retain", "Each scored trial ± stderr, coloured by outcome state, labelled with "
                     "its id; dashed: Pareto front; hollow star: baseline; green band: within delta of the "
                     "baseline retain."),
    "harmless_map.png": ("Harmless region", "The fit's P(retain drop ≤ δ) over the boundary's coordinates; black "
                         "line: P = 0.5, the estimated boundary; dotted band between the dashed lines: 0.1 < P < 0.9, "
                         f"the boundary's interval; faded: extrapolated (no trial within {NEAR:g} of the "
                         "panel's width and height); points coloured by outcome state, labelled with their ids."),
    "training_curves.png": ("Training curves", "Logged training metrics per trial, coloured by state."),
}
CSS = """body{font:15px/1.5 system-ui,sans-serif;color:#222;max-width:1200px;margin:2em auto;padding:0 1em}
nav a{margin-right:1em}.verdict{background:#f4f8f4;border-left:4px solid #2ca02c;padding:.8em 1em}
dl.verdict{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1em;margin:0}
dl.verdict dt{font-weight:600}dl.verdict dd{margin:0}dl.verdict ul{margin:0;padding-left:1.2em}
img{max-width:100%;height:auto;border:1px solid #ddd}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}th{background:#eee}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
tr>:first-child,tr>:nth-child(2){text-align:left}td:last-child{white-space:normal}
.scroll:not(.wide) :is(td,th):nth-child(8){white-space:normal;text-align:left}
.chip{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em}"""


def render_report(run_dir: str | Path, delta: float | None = None, confidence: float | None = None) -> Path:
    """Analyse the run and write RUN_DIR/report/; returns that directory. ``delta`` defaults to the run's
    (run_config.json), else ``DEFAULT_DELTA``; ``confidence`` to ``DEFAULT_CONFIDENCE``."""
    run_dir = Path(run_dir)
    data = load_run(run_dir)
    if delta is None:
        delta = float(data.config.get("delta", DEFAULT_DELTA))
    if confidence is None:
        confidence = DEFAULT_CONFIDENCE
    from tuner.boundary_search.report_fit import run_model_fit

    base = data.baseline
    base_retain = base.retain.acc if base and base.retain else None
    base_forget = (base.forget.acc, base.forget.stderr) if base and base.forget else None  # as the sampler had it
    a = analyse(data.trials, data.baseline, delta, confidence, boundary=run_boundary(data.config),
                model=run_model_fit(run_dir, data.config, base_retain, delta, base_forget))
    stop = data.stop + (after_stop(run_dir, a.replicates and a.replicates.runs, a.fit.n_trials) if a.by_model else "")
    verdict = build_verdict(a, data.trials, data.baseline, stop)
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    plots = {"tradeoff.png": tradeoff_png(data.trials, data.baseline, a),
             "harmless_map.png": harmless_map_png(data.trials, a),
             "training_curves.png": curves_png(data.curves, a.states)}
    for name, plot in plots.items():  # a figure with nothing to show is dropped, also from an earlier render
        if plot:
            _write_atomic(out / name, plot.png)
        else:
            (out / name).unlink(missing_ok=True)
    figures = {name: plot for name, plot in plots.items() if plot}
    tabs = tables(data, a, run_dir)
    title = f"Boundary report: {run_dir.resolve().name}"
    summary = {**a.to_dict(), "verdict": verdict.to_dict()}
    _write_atomic(out / "boundary.json", json.dumps(summary, indent=1, allow_nan=False).encode())
    _write_atomic(out / "report.md", _markdown(title, verdict, figures, tabs).encode())
    _write_atomic(out / "report.html", _html(title, verdict, figures, tabs).encode())
    return out


def _markdown(title: str, verdict: Verdict, figures: dict[str, Plot], tables: list[Table]) -> str:
    parts = [f"# {title}", "## Verdict", "\n".join(_md_item(k, v) for k, v in verdict.items())]
    for name in figures:
        section, caption = FIGURES[name]
        parts += [f"## {section}", f"![{section}]({name})", f"*{caption}*"]
    for caption, header, rows in tables:
        lines = [header, ["---"] * len(header), *rows]
        cells = [[c.replace("|", "\\|").replace("\n", " ") for c in line] for line in lines]
        parts += [f"## {caption}", "\n".join("| " + " | ".join(line) + " |" for line in cells)]
    return "\n\n".join(parts) + "\n"


def _md_item(label: str, value: str | tuple[str, ...]) -> str:
    if isinstance(value, tuple):
        return f"- **{label}:**" + "".join(f"\n  - {v}" for v in value)
    return f"- **{label}:** {value}"


def _html(title: str, verdict: Verdict, figures: dict[str, Plot], tables: list[Table]) -> str:
    """One self-contained page: inline CSS, PNGs as data URIs at their own width, in-page links only."""
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{_html_value(v)}</dd>" for k, v in verdict.items())
    sections = [("verdict", "Verdict", f'<dl class="verdict">{items}</dl>')]
    for name, plot in figures.items():
        section, caption = FIGURES[name]
        img = (f'<img src="data:image/png;base64,{base64.b64encode(plot.png).decode()}" width="{plot.width}" '
               f'alt="{section}">')
        sections.append((name.removesuffix(".png").replace("_", "-"), section,
                         f'<figure data-labels="{plot.labelled}">{img}<figcaption>{caption}</figcaption></figure>'))
    for caption, header, rows in tables:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>" for r in rows)
        wide = "" if caption == OUTCOMES else " wide"
        sections.append((caption.lower().replace(" ", "-"), caption,
                         f'<div class="scroll{wide}"><table><tr>{head}</tr>{body}</table></div>'))
    nav = " ".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t, _ in sections)
    body = "\n".join(f'<section id="{i}"><h2>{html.escape(t)}</h2>{c}</section>' for i, t, c in sections)
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style>'
    return (f'<!doctype html>\n<html lang="en"><head>{head}</head>\n<body><h1>{html.escape(title)}</h1>'
            f"<nav>{nav}</nav>\n{body}\n</body></html>\n")


def _html_value(value: str | tuple[str, ...]) -> str:
    if isinstance(value, tuple):
        return "<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in value) + "</ul>"
    return html.escape(value)


def _html_cell(text: str) -> str:
    """Escaped cell text; an outcome state gets its plot colour as a chip."""
    colour = next((c for s, (c, _) in STATE_STYLE.items() if s and s.value == text), None)
    chip = f'<span class="chip" style="background:{colour}"></span>' if colour else ""
    return chip + html.escape(text)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, then os.replace: readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tuner.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="search run directory holding results.jsonl")
    parser.add_argument("--delta", type=float,
                        help=f"largest harmless retain drop, fraction (default: the run's, else {DEFAULT_DELTA:g})")
    parser.add_argument("--confidence", type=float,
                        help=f"one-sided test confidence (default {DEFAULT_CONFIDENCE:g})")
    args = parser.parse_args(argv)
    try:
        check_ranges({"--delta": args.delta, "--confidence": args.confidence})
        out = render_report(args.run_dir, args.delta, args.confidence)
    except (ReportInputError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(out / "report.html")
    print(out / "report.md")
