"""The evaluation stage: lm-eval on a model in memory, used by the training workers and by ``tuner``.

* ``result`` - ``TaskScore`` / ``EvalResult``, what the stage returns (JSON round-trip).
* ``tasks``  - which lm-eval tasks run (``TaskSet``) and where their configs come from.
* ``hub_data`` - checks of local eval data laid out like the Hub repos.
* ``stage``  - ``evaluate_model`` and the score table.
* ``cli``    - ``python -m tuner.evaluate``: score a saved model (plus an optional adapter).
"""
