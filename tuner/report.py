"""``python -m tuner.report RUN_DIR``: re-render a search's boundary report (``tuner.analysis.report``)."""

from tuner.analysis.report import main

if __name__ == "__main__":
    main()
