"""``python -m tuner.report RUN_DIR``: re-render a search's boundary report (``tuner.analysis.report``) and write
the analysis back into the search's MLflow runs (``tuner.records.mlflow_analysis``)."""

import sys
from pathlib import Path

from tuner.analysis.report import main as render_main


def main(argv: list[str] | None = None) -> None:
    """Render, then tag the MLflow runs of a run directory that has a parent run (a search's)."""
    argv = sys.argv[1:] if argv is None else argv
    render_main(argv)
    run_dir = Path(next(a for a in argv if not a.startswith("-") and Path(a).is_dir()))
    sync_mlflow(run_dir)


def sync_mlflow(run_dir: Path) -> None:
    """Nothing for a directory that is not a search's (no complete run_config.json, no parent run)."""
    from trainables.config import ConfigError
    from tuner.orchestration.context import SearchContext
    from tuner.records.mlflow_analysis import sync_analysis
    from tuner.records.tracking import Tracker

    try:
        ctx = SearchContext.load(run_dir)
    except ConfigError:
        return
    if ctx.parent_run_id and "experiment_id" in ctx.extra:
        sync_analysis(Tracker(ctx.mlflow_uri, ctx.extra["experiment_id"], ctx.parent_run_id), run_dir)


if __name__ == "__main__":
    main()
