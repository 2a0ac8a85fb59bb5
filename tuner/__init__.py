"""The search service. Commands (entry modules): ``run``, ``report``, ``evaluate``, ``bench_overhead``,
``bench_search``. Sub-packages, in the order a search uses them: ``orchestration`` (CLI, preflight, Ray + Tune,
trials) -> ``records`` (results table, MLflow) -> ``analysis`` (boundary, report); ``boundary_search`` is the
boundary sampler, ``bench_search`` its benchmark. Training and evaluation run in ``trainables`` (imported
downward; ``trainables`` never imports ``tuner``).
"""
