"""The Tune side of the boundary search: stderrs reach the Optuna trials, the stopping rule ends the
search with ``Searcher.FINISHED`` and leaves the reason in ``run_dir/stop.json``."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from ray.tune.search import Searcher

from search_spaces import get_space
from search_spaces.facts import REPLICATE_OF, SEED_OFFSET
from tests.tuner.test_boundary_search import BASE, FAST, SPACE, objective
from tuner.boundary_search import BoundarySampler, BoundarySamplerConfig, ModelSpec, StopRule
from tuner.boundary_search.searcher import BoundaryOptunaSearch
from tuner.boundary_search.stopping import after_stop, stop_reason

SPEC = ModelSpec(baseline_retain=BASE, boundary=get_space("kl_boundary").boundary)


def test_searcher_passes_stderrs_and_finishes_when_pinned(tmp_path: Path):
    config = BoundarySamplerConfig(n_candidates=FAST.n_candidates, stop=StopRule(min_trials=10))
    searcher = BoundaryOptunaSearch(space=SPACE, metric=["eval_forget_acc", "eval_retain_acc"], mode=["min", "max"],
                                    sampler=BoundarySampler(SPEC, config, seed=0),
                                    run_dir=tmp_path)
    assert stop_reason(tmp_path, 60) == "ran to the budget cap (--num-samples 60) before the stopping rule fired"
    assert stop_reason(tmp_path, 60, trials=60).startswith("ran to the budget cap")
    early = stop_reason(tmp_path, 60, trials=2)  # Tune ended before the cap without the rule: not "the cap"
    assert early == "ended after 2 of --num-samples 60 trials before the stopping rule fired"
    configs = {}
    for i in range(60):
        config_or_finished = searcher.suggest(f"t{i}")
        if config_or_finished == Searcher.FINISHED:
            break
        configs[i] = config_or_finished
        forget, retain, fse, rse = objective(config_or_finished)
        searcher.on_trial_complete(f"t{i}", {"eval_forget_acc": forget, "eval_retain_acc": retain,
                                             "eval_forget_stderr": fse, "eval_retain_stderr": rse})
    assert config_or_finished == Searcher.FINISHED, "the stopping rule never fired in 60 trials"
    assert 10 <= i < 60
    trials = searcher._ot_study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    stderrs = {"forget_stderr": 0.02, "retain_stderr": 0.01}
    assert len(trials) == i and all(stderrs.items() <= t.user_attrs.items() for t in trials)
    # every trial's Tune config carries its training seed offset, its trial number (fresh seeds; trial 0 trains
    # with the seed itself); a replicate's: the first run's coefficients and its own offset
    assert all(configs[n].get(SEED_OFFSET, 0) == n for n in configs)
    replicates = [t for t in trials if REPLICATE_OF in t.user_attrs]
    assert replicates, "the search stopped without a confirming replicate"
    for t in replicates:
        first = configs[t.user_attrs[REPLICATE_OF]]
        assert {k: v for k, v in configs[t.number].items() if k != SEED_OFFSET} == {
            k: v for k, v in first.items() if k != SEED_OFFSET}
    reason = stop_reason(tmp_path, 60)
    assert reason.startswith("stopped by itself: boundary pinned and recommendation converged after")
    assert "P(retain drop <= delta)" in reason and "2 of 2 confirming runs" in reason
    fired = json.loads((tmp_path / "stop.json").read_text())  # what after_stop compares the report's answer with
    assert fired["trials"] == i and f"trial {fired['recommended']} (2 runs" in reason
    # Tune checkpoints the searcher (pickle) for --resume: the restored one is still finished
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = BoundaryOptunaSearch(space=SPACE, metric=["eval_forget_acc", "eval_retain_acc"], mode=["min", "max"],
                                    run_dir=tmp_path)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("again") == Searcher.FINISHED


def test_the_stop_sentence_ends_with_what_the_trials_running_at_the_stop_changed(tmp_path: Path):
    """Trials still running when the rule fired finish afterwards; the sentence says whether the report's answer is
    still the point the rule named."""
    assert after_stop(tmp_path, ["t7", "t9"], 30) == ""  # the rule never fired
    (tmp_path / "stop.json").write_text(json.dumps({"reason": "...", "trials": 30, "recommended": "t7"}))
    assert after_stop(tmp_path, ["t7", "t9"], 30) == ""  # nothing finished after it
    assert after_stop(tmp_path, ["t9", "t7"], 32) == ("; the 2 trials still running at the stop finished afterwards: "
                                                      "trial t7 stays recommended")
    assert after_stop(tmp_path, ["t12", "t31"], 31).endswith("1 trial still running at the stop finished afterwards: "
                                                             "the recommendation moved to trial t12")
    assert after_stop(tmp_path, None, 31).endswith(": no point is recommended now")


def test_the_cap_sentence_says_what_the_rules_last_check_missed(tmp_path: Path):
    """At the cap the sentence claims nothing the rule did not find: it quotes the rule's last check."""
    last = "boundary pinned, recommendation not yet converged: ... the model expects at most 8.1 forget points more"
    reason = stop_reason(tmp_path, 48, last)
    assert reason == ("ran to the budget cap (--num-samples 48) before the stopping rule fired; its last check, as the "
                      f"last trial was suggested: {last}")
    assert "without pinning" not in reason
