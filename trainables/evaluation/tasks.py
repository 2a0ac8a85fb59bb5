"""Which lm-eval tasks the eval stage runs, and where their data comes from.

* ``real_task_set(None)``: the stock ``wmdp_bio`` + ``mmlu_stem`` (data from the Hub or the HF cache).
* ``real_task_set(root)``: the same task names, fully offline, on data laid out like the Hub repos::

      <root>/cais/wmdp/README.md                   (``configs:`` YAML front matter listing the files)
      <root>/cais/wmdp/wmdp-bio/test.jsonl
      <root>/cais/mmlu/README.md
      <root>/cais/mmlu/<subject>/{test,dev}.jsonl  (or ``.parquet``, as ``hf download`` gives them)

  through a directory of "shadow" YAMLs (lmeval-notes §3): each one ``include:``s the installed task YAML by
  absolute path and changes only ``dataset_path`` and the ``datasets`` cache_dir, which is keyed by the data's
  content (``data_digest``), so a root edited in place is re-read, never served from a stale cache.
  The CLI accepts the same directory:
  ``lm_eval run --model hf --tasks wmdp_bio,mmlu_stem --include_path <task_set.include_path>``.

``validate_hub_layout(root)`` checks such data before lm-eval runs; lm-eval itself fails late or silently.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from trainables.config import MINIWORLD_MODELS

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0"}
MMLU_STEM_TAG = "mmlu_stem_tasks"
# lm-eval's MMLU has ``fewshot_split: dev``: building the task needs that split even at 0-shot.
REQUIRED_SPLITS = {"cais/mmlu": ("test", "dev")}


class DataError(ValueError):
    """Local eval data that lm-eval would reject or silently mis-score; the message names file and field."""


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


def set_offline_env(env: Mapping[str, str] = OFFLINE_ENV) -> None:
    """Set ``env`` (default ``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_UPDATE_DOWNLOAD_COUNTS=0``) unless set.

    ``datasets`` reads these at import time, so call this before anything imports ``datasets`` or ``lm_eval``;
    ``set_offline_env(offline_env(cfg))`` sets what one run config needs.
    """
    for key, value in env.items():
        os.environ.setdefault(key, value)


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


def offline_env(cfg: Any) -> dict[str, str]:
    """HF switches a run with this config needs before ``datasets`` is imported (also for Ray workers)."""
    if cfg.model in MINIWORLD_MODELS:
        return dict(OFFLINE_ENV)
    if cfg.eval_data_root:
        return {"HF_DATASETS_OFFLINE": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0"}
    return {}


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


def data_digest(root: Path, configs: Mapping[str, Iterable[str]]) -> str:
    """sha256 over each repo's README and the data files of ``configs``: relative name, size and content."""
    digest = hashlib.sha256()
    for repo, names in sorted(configs.items()):
        readme = root / repo / "README.md"
        listed = _readme_configs(readme)
        files = {readme} | {path for name in names for patterns in listed[name].values() for pattern in patterns
                            for path in (root / repo).glob(pattern)}
        for path in sorted(files):
            digest.update(f"{path.relative_to(root)}\0{path.stat().st_size}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def make_task_manager(task_set: TaskSet) -> Any:
    """lm-eval's ``TaskManager`` for this task set, built once per process (the full index takes 4-9 s)."""
    if task_set.offline:
        set_offline_env()
    return _task_manager(task_set.include_path, task_set.include_defaults)


@functools.cache
def _task_manager(include_path: str | None, include_defaults: bool) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def validate_hub_layout(data_root: str | os.PathLike[str],
                        configs: Mapping[str, Iterable[str]] | None = None) -> int:
    """Check local data laid out like Hub dataset repos; return the number of rows checked.

    ``configs`` maps a repo (``"cais/mmlu"``) to the config names to check; the default is every
    ``<org>/<name>/README.md`` under the root with every config its ``configs:`` front matter lists.
    Each listed data file must exist and every row needs a ``question``, exactly 4 ``choices`` and an int
    ``answer`` in 0..3; ``cais/mmlu`` configs also need a ``dev`` split. Raises ``DataError`` (one line).
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"{root}: data root does not exist (expected e.g. {root}/cais/wmdp/README.md)")
    if configs is None:
        configs = {p.parent.relative_to(root).as_posix(): () for p in sorted(root.glob("*/*/README.md"))}
        if not configs:
            raise DataError(f"{root}: no <org>/<name>/README.md found (expected e.g. cais/wmdp/README.md)")
    rows = 0
    for repo, wanted in configs.items():
        readme = root / repo / "README.md"
        listed = _readme_configs(readme)
        _check_one_format(root / repo, readme, listed)
        for name in list(wanted) or list(listed):
            if name not in listed:
                raise DataError(f"{readme}: field 'configs' has no config_name {name!r}")
            for split in REQUIRED_SPLITS.get(repo, ("test",)):
                if split not in listed[name]:
                    raise DataError(f"{readme}: config {name!r} lists no {split!r} split in 'data_files' "
                                    f"(lm-eval needs it; MMLU needs 'dev' even at 0-shot)")
            for split, patterns in listed[name].items():
                for pattern in patterns:
                    matches = sorted((root / repo).glob(pattern))
                    if not matches:
                        raise DataError(f"{root / repo / pattern}: file missing (listed for config {name!r}, "
                                        f"split {split!r} in {readme})")
                    rows += sum(_check_rows(path) for path in matches)
    return rows


def _check_one_format(repo: Path, readme: Path, listed: dict[str, dict[str, list[str]]]) -> None:
    """``datasets`` loads every config of a repo with the builder of its first config (json or parquet)."""
    formats: dict[str, str] = {}  # suffix -> first config that uses it
    for name, splits in listed.items():
        for path in (p for patterns in splits.values() for pattern in patterns for p in repo.glob(pattern)):
            formats.setdefault(path.suffix, name)
    if len(formats) > 1:
        (first, first_cfg), (other, other_cfg) = list(formats.items())[:2]
        raise DataError(f"{readme}: configs mix file formats ({first} in {first_cfg!r}, {other} in {other_cfg!r}); "
                        f"`datasets` reads a whole repo with one builder, so store every config as {first}")


def _readme_configs(readme: Path) -> dict[str, dict[str, list[str]]]:
    """``{config_name: {split: [path pattern, ...]}}`` from a Hub README's YAML front matter, split off the
    way ``datasets`` does it: the first line is ``---`` and the block ends at the next line that is ``---``."""
    if not readme.is_file():
        raise DataError(f"{readme}: file missing (a Hub-style repo needs a README.md with 'configs:')")
    lines = readme.read_text().splitlines()
    end = lines.index("---", 1) if lines[:1] == ["---"] and "---" in lines[1:] else 0
    front = yaml.safe_load("\n".join(lines[1:end])) if end else None
    if not isinstance(front, dict) or not isinstance(front.get("configs"), list):
        raise DataError(f"{readme}: field 'configs' missing from the '---' YAML front matter")
    out: dict[str, dict[str, list[str]]] = {}
    for cfg in front["configs"]:
        files = cfg.get("data_files", [])
        if isinstance(files, str) or all(isinstance(f, str) for f in files):
            files = [{"split": "train", "path": files}]  # plain path(s) mean the single 'train' split
        splits = out.setdefault(cfg["config_name"], {})
        for f in files:
            splits.setdefault(f["split"], []).extend([f["path"]] if isinstance(f["path"], str) else f["path"])
    return out


def _check_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif path.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(path.read_text().splitlines(), 1):
            try:
                rows += [json.loads(line)] if line.strip() else []
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    else:
        raise DataError(f"{path}: unsupported data file type {path.suffix!r} (use .jsonl or .parquet)")
    if not rows:
        raise DataError(f"{path}: no rows")
    for i, row in enumerate(rows, 1):
        where = f"{path}:{i}" if path.suffix == ".jsonl" else f"{path} row {i}"
        _check_row(row, where)
    return len(rows)


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict) or not isinstance(row.get("question"), str):
        raise DataError(f"{where}: field 'question' missing or not a string")
    choices = row.get("choices")
    if not isinstance(choices, list) or len(choices) != 4:
        n = len(choices) if isinstance(choices, list) else "no"
        raise DataError(f"{where}: field 'choices' has {n} entries; the WMDP/MMLU prompt needs exactly 4")
    answer = row.get("answer")
    if isinstance(answer, str):
        raise DataError(f"{where}: field 'answer' is the string {answer!r}; store an int 0..3 "
                        f"(lm-eval silently scores string answers as wrong)")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer <= 3:
        raise DataError(f"{where}: field 'answer' is {answer!r}; expected an int index 0..3 into 'choices'")
