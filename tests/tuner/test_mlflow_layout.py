"""MLflow layout: run names, rounded params, train/ and eval/ keys, constants as params, the parent's params,
and the analysis written back into a real sqlite store (``tuner.records.mlflow_analysis``)."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from trainables.evaluation.result import TaskScore
from tuner.orchestration.cli import build_parser, validate
from tuner.orchestration.context import default_uri
from tuner.records.mlflow_analysis import NOTE
from tuner.records.mlflow_layout import (
    adapter_readme,
    constants_and_curves,
    eval_metrics,
    parent_params,
    rounded_params,
    run_name,
    train_metrics,
)
from tuner.records.schema import TrialRow
from tuner.records.tracking import runs_link

PARAMS = {"retain_coef": 5.123456, "remove_coef": 1.3, "beta_kl": 0.3}


def test_names_and_rounding():
    assert run_name("a1b2c3d4", PARAMS) == "a1b2c3d4 retain=5.12 remove=1.3 beta_kl=0.3"
    assert rounded_params(PARAMS) == {"retain_coef": "5.123", "remove_coef": "1.3", "beta_kl": "0.3"}
    assert runs_link("sqlite:////x/mlflow.db", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")
    assert runs_link("http://host:5000/", "7").startswith("http://host:5000/#/experiments/7/runs?")


def test_metric_keys_and_constants():
    report = {"step": 4, "total_steps": 8, "loss": 1.5, "cb_loss": 0.9, "lr": 1e-3, "coef_retain": 2.0}
    assert train_metrics(report) == {"train/loss": 1.5, "train/cb_loss": 0.9}
    history = [{"step": 4, "lr": 1e-3, "total_steps": 8, "coef_retain": 2.0, "coef_remove": 5.0},
               {"step": 8, "lr": 1e-3, "total_steps": 8, "coef_retain": 4.0, "coef_remove": 5.0}]
    params, curves = constants_and_curves(history)
    assert params == {"total_steps": "8", "lr": "0.001", "coef_remove": "5"}
    assert curves == [("train/coef_retain", 2.0, 4), ("train/coef_retain", 4.0, 8)]
    row = TrialRow("t1", "done", params=PARAMS, forget=TaskScore("bio", 0.25, 0.05, 48),
                   retain=TaskScore("stem", 0.9, 0.04, 48), forget_alt=TaskScore("bio_l", 0.3, 0.06, 48),
                   alt_format="letter")
    assert set(eval_metrics(row)) == {"eval/forget_acc", "eval/forget_stderr", "eval/retain_acc",
                                      "eval/retain_stderr", "eval/forget_letter_acc", "eval/forget_letter_stderr"}
    readme = adapter_readme(row, "miniworld-small")
    assert "trial t1" in readme and "`retain_coef` = 5.123" in readme and "forget (`bio`, n=48): 25.0 ± 5.0 %" in readme


def test_parent_params_hold_the_space_not_the_searched_defaults(tmp_path):
    ctx = validate(build_parser().parse_args(["--preset", "miniworld-small", "--run-dir", str(tmp_path / "r")]))
    params = parent_params(ctx)
    assert params["sampler"] == "boundary" and params["delta"] == ctx.delta and params["seed"] == 0
    assert params["search.retain_coef"].startswith("loguniform(")
    assert not {"retain_coef", "remove_coef", "beta_kl"} & set(params["config"]) and "lr" in params["config"]


def test_sync_analysis_tags_children_and_describes_the_parent(logged_run):
    run_dir, tracker, ids = logged_run
    client = MlflowClient(default_uri(run_dir))
    runs = {t: client.get_run(run_id) for t, run_id in ids.items()}
    assert runs["t00"].info.run_name == "t00 retain=1 remove=0.1 beta_kl=0.5"
    assert runs["t00"].data.tags["state"] == "forgets_harmlessly" and runs["t99"].data.tags["state"] == "failed"
    assert {runs[t].data.tags["pareto"] for t in ids} <= {"true", "false"} and runs["t00"].data.tags["p_harmless"]
    assert len(client.get_metric_history(ids["t00"], "eval/forget_stderr")) == 1
    assert [a.path for a in client.list_artifacts(ids["t00"])] == ["config.json"]
    parent = client.get_run(tracker.parent_run_id).data
    verdict = json.loads((run_dir / "report" / "boundary.json").read_text())["verdict"]
    assert parent.tags[NOTE].startswith(f"- **outcome**: {verdict['outcome']}\n- **recommended**: ")
    assert all(line in parent.tags[NOTE] for line in verdict["boundary"])
    assert parent.metrics["baseline/retain_acc"] == 0.8 and "recommended/forget_acc" in parent.metrics
    baseline = tracker.children()["baseline"]
    assert baseline.data.tags["state"] == "baseline" and "eval/retain_stderr" in baseline.data.metrics
