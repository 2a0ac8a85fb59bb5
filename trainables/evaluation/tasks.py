"""Which lm-eval tasks the eval stage runs, and where their data comes from.

* ``real_task_set(None)``: the stock ``wmdp_bio`` + ``mmlu_stem`` (data from the Hub or the HF cache).
* ``real_task_set(root)``: the same task names, fully offline, on data laid out like the Hub repos::

      <root>/cais/wmdp/README.md                   (``configs:`` YAML front matter listing the files)
      <root>/cais/wmdp/wmdp-bio/test.jsonl
      <root>/cais/mmlu/README.md
      <root>/cais/mmlu/<subject>/{test,dev}.jsonl  (or ``.parquet``, as ``hf download`` gives them)

  through a directory of "shadow" YAMLs (docs/architecture.md#evaluation): each one ``include:``s the installed task
  YAML by absolute path and changes only ``dataset_path`` and the ``datasets`` cache_dir, which is keyed by the data's
  content (``data_digest``), so a root edited in place is re-read, never served from a stale cache. The CLI accepts the
  same directory:
  ``lm_eval run --model hf --tasks wmdp_bio,mmlu_stem --include_path <task_set.include_path>``.

``check_tasks(task_set)`` checks the task names against lm-eval's index; the data itself is checked by
``trainables.evaluation.hub_data`` before lm-eval runs (lm-eval fails late or silently).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from trainables.config import ConfigError
from trainables.evaluation.hub_data import data_digest, validate_hub_layout
from trainables.offline import set_offline_env

MMLU_STEM_TAG = "mmlu_stem_tasks"


@dataclass(frozen=True)
class TaskSet:
    """What to run (``tasks``), the two primary scores, and where lm-eval finds the task configs."""

    name: str
    tasks: tuple[str, ...]
    forget_task: str
    retain_task: str
    include_path: str | None = None
    include_defaults: bool = True
    offline: bool = False
    alt_format: str = ""            # a second prompt format of the same questions, reported beside the primary
    alt_forget_task: str = ""
    alt_retain_task: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tasks": list(self.tasks)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSet:
        return cls(**{**d, "tasks": tuple(d["tasks"])})


def lm_eval_tasks_dir() -> Path:
    """The installed ``lm_eval/tasks`` directory, found without importing lm_eval (and hence datasets)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("lm_eval is not installed: pip install 'lm-eval>=0.4.13'")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


def mmlu_stem_yamls() -> dict[str, Path]:
    """The 19 MMLU STEM subtasks, ``{subject: installed yaml}``, found by their ``mmlu_stem_tasks`` tag."""
    found = {}
    for path in sorted((lm_eval_tasks_dir() / "mmlu" / "default").glob("mmlu_*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        tags = cfg.get("tag", [])
        if MMLU_STEM_TAG in ([tags] if isinstance(tags, str) else tags):
            found[cfg["dataset_name"]] = path
    return found


def real_task_set(data_root: str | os.PathLike[str] | None = None,
                  workdir: str | os.PathLike[str] | None = None) -> TaskSet:
    """WMDP-Bio (forget) and MMLU-STEM (retain). With ``data_root``: validated local data, shadow YAMLs
    written under ``workdir`` (default ``<data_root>/.lmeval_tasks``), offline and without lm-eval's index."""
    kwargs: dict[str, Any] = dict(name="wmdp_bio+mmlu_stem", tasks=("wmdp_bio", "mmlu_stem"),
                                  forget_task="wmdp_bio", retain_task="mmlu_stem")
    if data_root is None:
        return TaskSet(**kwargs)
    root = Path(data_root).resolve()
    configs = {"cais/wmdp": ["wmdp-bio"], "cais/mmlu": list(mmlu_stem_yamls())}
    validate_hub_layout(root, configs)
    cache = root / ".hf_datasets_cache" / data_digest(root, configs)
    shadow = write_shadow_dir(root, Path(workdir) if workdir else root / ".lmeval_tasks", cache)
    return TaskSet(**kwargs, include_path=str(shadow), include_defaults=False, offline=True)


def miniworld_task_set(world: Any) -> TaskSet:
    """The mini-world's four tasks (cloze = the primary scores; letter = the exact WMDP/MMLU prompt)."""
    from trainables.miniworld import ALT_FORGET_TASK, ALT_RETAIN_TASK, FORGET_TASK, RETAIN_TASK, TASKS

    validate_hub_layout(world.data_root)
    return TaskSet(name="miniworld", tasks=tuple(TASKS), forget_task=FORGET_TASK, retain_task=RETAIN_TASK,
                   include_path=str(world.tasks_dir), include_defaults=False, offline=True, alt_format="letter",
                   alt_forget_task=ALT_FORGET_TASK, alt_retain_task=ALT_RETAIN_TASK)


def task_set_for(cfg: Any) -> TaskSet:
    """The task set a ``TrainConfig`` names: the mini-world's, or the real one (offline with a data root)."""
    if cfg.eval_tasks == "miniworld":
        from trainables.model import miniworld

        return miniworld_task_set(miniworld(cfg))
    return real_task_set(cfg.eval_data_root or None)


def write_shadow_dir(root: Path, workdir: Path, cache: Path) -> Path:
    """Write the shadow YAMLs into ``workdir/<content hash>`` (tmp dir + rename, so never half-written);
    ``cache`` is the ``datasets`` cache_dir they name (``data_digest`` of the data, so edits are re-read)."""
    real = lm_eval_tasks_dir()
    files = {"wmdp_bio.yaml": _shadow(real / "wmdp" / "wmdp_bio.yaml", root / "cais" / "wmdp", cache),
             "_mmlu_stem.yaml": _shadow(real / "mmlu" / "default" / "_mmlu_stem.yaml")}
    for path in mmlu_stem_yamls().values():
        files[path.name] = _shadow(path, root / "cais" / "mmlu", cache)
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]
    out = workdir / f"wmdp_mmlu_stem-{digest}"
    if out.is_dir():
        return out
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=workdir))
    except OSError as e:
        raise OSError(f"cannot write lm-eval task configs into {workdir} ({e.strerror}); "
                      f"pass a writable workdir to real_task_set()") from e
    for name, text in files.items():
        (tmp / name).write_text(text)
    try:
        os.rename(tmp, out)
    except OSError:  # another process renamed the same content first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _shadow(installed: Path, dataset_path: Path | None = None, cache: Path | None = None) -> str:
    """``include:`` the installed YAML; set ``dataset_path`` and an Arrow cache private to this data content.

    ``datasets`` keys its cache of a local dataset by directory name + config, not by the files' content
    (``wmdp/wmdp-bio/0.0.0/<hash>``): two data roots, or one root edited in place, would silently serve the
    old rows. ``cache`` is keyed by ``data_digest``, so it changes whenever the data does.
    """
    text = f"include: {json.dumps(str(installed))}\n"
    if dataset_path is None or cache is None:
        return text
    return (text + f"dataset_path: {json.dumps(str(dataset_path))}\n"
            f"dataset_kwargs:\n  cache_dir: {json.dumps(str(cache))}\n")


def make_task_manager(task_set: TaskSet) -> Any:
    """lm-eval's ``TaskManager`` for this task set, built once per process (the full index takes 4-9 s)."""
    if task_set.offline:
        set_offline_env()
    return _task_manager(task_set.include_path, task_set.include_defaults)


@functools.cache
def _task_manager(include_path: str | None, include_defaults: bool) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def check_tasks(task_set: TaskSet) -> None:
    """Every task name is in lm-eval's index for this task set (built once per process, no model)."""
    unknown = [t for t in task_set.tasks if t not in make_task_manager(task_set).all_tasks]
    if unknown:
        where = f" --include_path {task_set.include_path}" if task_set.include_path else ""
        raise ConfigError(f"unknown lm-eval task(s) {unknown} in task set {task_set.name!r}; "
                          f"see `lm_eval ls tasks{where}`")
