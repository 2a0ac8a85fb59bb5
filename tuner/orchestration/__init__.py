"""Orchestration of one search: CLI and preflight checks, the service (Ray, MLflow parent, baseline, Tune),
the Tune wiring and samplers, the per-trial driver, the search context and SIGTERM / Ctrl+C handling.

Flow: ``cli`` -> ``preflight`` -> ``service`` -> ``search`` (Tuner + samplers) -> ``trial`` (Ray Train run,
evaluation, one results row) -> ``tuner.records`` -> ``tuner.analysis`` (the report).
"""
