"""Checks of local eval data laid out like Hub dataset repos, before lm-eval runs (it fails late or silently)::

    <root>/cais/wmdp/README.md                   (``configs:`` YAML front matter listing the files)
    <root>/cais/wmdp/wmdp-bio/test.jsonl
    <root>/cais/mmlu/README.md
    <root>/cais/mmlu/<subject>/{test,dev}.jsonl  (or ``.parquet``, as ``hf download`` gives them)

``validate_hub_layout(root)`` checks files and rows; ``data_digest(root, configs)`` keys a cache by their content.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# lm-eval's MMLU has ``fewshot_split: dev``: building the task needs that split even at 0-shot.
REQUIRED_SPLITS = {"cais/mmlu": ("test", "dev")}


class DataError(ValueError):
    """Local eval data that lm-eval would reject or silently mis-score; the message names file and field."""


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
