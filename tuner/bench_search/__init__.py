"""Replay benchmark of boundary-search methods on a dense table (``python -m tuner.bench_search``)."""
