"""The controller's progress line prints every registered loss term under its short name."""

from __future__ import annotations

from trainables.objective import loss_metrics
from trainables.progress import ProgressLine


def test_progress_line_prints_every_loss_term(capsys):
    report = {"step": 2, "total_steps": 4, "loss": 9.5, "tokens_per_s": 120.0, "cos_sim_mean": 0.25,
              **{metric: 0.5 + i for i, metric in enumerate(loss_metrics())}}
    ProgressLine("t1 ").after_report(None, [report], None)
    line = capsys.readouterr().out.strip()
    assert line.startswith("t1 step 2/4  loss=9.5000  cb=0.5000  kl=2.5000  l2=1.5000  tok/s=120  ETA")
