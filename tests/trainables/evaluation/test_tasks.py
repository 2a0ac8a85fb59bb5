"""Task sets, the offline shadow-YAML switch and the Hub-layout data validation (no model runs here)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from trainables.evaluation.hub_data import DataError, validate_hub_layout
from trainables.evaluation.tasks import TaskSet, make_task_manager, mmlu_stem_yamls, real_task_set
from trainables.offline import OFFLINE_ENV, set_offline_env

N_ROWS = 20 + 75 + 19 * 2  # wmdp-bio test + 19 MMLU subjects' test (3-5 each) + dev (2 each); conftest.write_hub_root


@pytest.fixture
def root(hub_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic data root that a test may break."""
    return Path(shutil.copytree(hub_root, tmp_path / "root", ignore=shutil.ignore_patterns(".lmeval_tasks")))


def test_task_set_round_trips_through_json() -> None:
    ts = TaskSet(name="x", tasks=("a", "b"), forget_task="a", retain_task="b", include_path="/p",
                 include_defaults=False, offline=True)
    assert TaskSet.from_dict(json.loads(json.dumps(ts.to_dict()))) == ts


def test_mmlu_stem_is_found_by_tag(hub_root: Path) -> None:
    subjects = sorted(p.name for p in (hub_root / "cais" / "mmlu").iterdir() if p.is_dir())
    assert sorted(mmlu_stem_yamls()) == subjects and len(subjects) == 19


def test_stock_task_set_uses_lm_eval_defaults() -> None:
    ts = real_task_set(None)
    assert (ts.tasks, ts.forget_task, ts.retain_task) == (("wmdp_bio", "mmlu_stem"), "wmdp_bio", "mmlu_stem")
    assert (ts.include_path, ts.include_defaults, ts.offline) == (None, True, False)


def test_local_task_set_writes_shadow_yamls_once(root: Path) -> None:
    ts = real_task_set(root)
    shadow = Path(ts.include_path)
    assert shadow.parent == root / ".lmeval_tasks" and (ts.include_defaults, ts.offline) == (False, True)
    assert len(list(shadow.glob("*.yaml"))) == 21  # wmdp_bio + the mmlu_stem group + 19 subtasks
    assert (shadow / "wmdp_bio.yaml").read_text().splitlines()[1] == f'dataset_path: "{root}/cais/wmdp"'
    for path in shadow.glob("*.yaml"):
        included = json.loads(path.read_text().splitlines()[0].removeprefix("include: "))
        assert Path(included).is_file()
    assert real_task_set(root) == ts  # deterministic: same content, same directory
    assert [p.name for p in shadow.parent.iterdir()] == [shadow.name]  # no tmp dir left behind


def test_task_manager_is_cached_and_reads_the_local_data(task_set: TaskSet, hub_root: Path) -> None:
    tm = make_task_manager(task_set)
    assert make_task_manager(task_set) is tm
    assert {"wmdp_bio", "mmlu_stem", "mmlu_anatomy"} <= set(tm.all_tasks)
    task = tm.load(["wmdp_bio"])["tasks"]["wmdp_bio"]
    assert task.config.dataset_path == str(hub_root.resolve() / "cais" / "wmdp")
    assert len(task.test_docs()) == 20


def test_set_offline_env_keeps_explicit_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in OFFLINE_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    set_offline_env()
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["HF_DATASETS_OFFLINE"] == "1" and os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] == "0"


def test_validate_counts_every_row(root: Path) -> None:
    assert validate_hub_layout(root) == N_ROWS  # every config every README lists
    assert validate_hub_layout(root, {"cais/wmdp": ["wmdp-bio"]}) == 20


def _edit_row(path: str, **fields: object) -> Callable[[Path], None]:
    """Overwrite fields of the first row of ``<root>/<path>`` (a field set to None is removed)."""
    def edit(root: Path) -> None:
        rows = [json.loads(line) for line in (root / path).read_text().splitlines()]
        rows[0].update(fields)
        rows[0] = {k: v for k, v in rows[0].items() if v is not None}
        (root / path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return edit


def _drop_dev_from_readme(root: Path) -> None:
    readme = root / "cais" / "mmlu" / "README.md"
    readme.write_text(readme.read_text().replace("  - split: dev\n    path: anatomy/dev.jsonl\n", ""))


BROKEN = {
    "answer as string": (_edit_row("cais/wmdp/wmdp-bio/test.jsonl", answer="1"),
                         "cais/wmdp/wmdp-bio/test.jsonl:1: field 'answer' is the string '1'"),
    "answer out of range": (_edit_row("cais/mmlu/astronomy/test.jsonl", answer=4),
                            "cais/mmlu/astronomy/test.jsonl:1: field 'answer' is 4"),
    "3 choices": (_edit_row("cais/mmlu/anatomy/test.jsonl", choices=["a", "b", "c"]),
                  "cais/mmlu/anatomy/test.jsonl:1: field 'choices' has 3 entries"),
    "no question": (_edit_row("cais/mmlu/anatomy/dev.jsonl", question=None),
                    "cais/mmlu/anatomy/dev.jsonl:1: field 'question' missing"),
    "missing dev file": (lambda r: (r / "cais/mmlu/anatomy/dev.jsonl").unlink(),
                         "cais/mmlu/anatomy/dev.jsonl: file missing"),
    "no dev split": (_drop_dev_from_readme, "cais/mmlu/README.md: config 'anatomy' lists no 'dev' split"),
    "missing README": (lambda r: (r / "cais/wmdp/README.md").unlink(), "cais/wmdp/README.md: file missing"),
    "bad JSON": (lambda r: (r / "cais/wmdp/wmdp-bio/test.jsonl").write_text("{\n"),
                 "cais/wmdp/wmdp-bio/test.jsonl:1: not valid JSON"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_malformed_data_names_file_and_field(root: Path, case: str) -> None:
    breaks, message = BROKEN[case]
    breaks(root)
    with pytest.raises(DataError) as err:
        real_task_set(root)
    assert str(err.value).startswith(f"{root.resolve()}/{message}") and "\n" not in str(err.value)
    assert not (root / ".lmeval_tasks").exists()  # validated before anything is written


def test_parquet_files_are_checked_too(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = root / "cais" / "wmdp"
    rows = [json.loads(line) for line in (repo / "wmdp-bio" / "test.jsonl").read_text().splitlines()]
    (repo / "wmdp-bio" / "test.jsonl").unlink()
    pq.write_table(pa.Table.from_pylist(rows), repo / "wmdp-bio" / "test-00000-of-00001.parquet")
    (repo / "README.md").write_text((repo / "README.md").read_text().replace("test.jsonl", "test-*"))
    assert validate_hub_layout(root, {"cais/wmdp": ["wmdp-bio"]}) == 20
    pq.write_table(pa.Table.from_pylist([{**r, "answer": str(r["answer"])} for r in rows]),
                   repo / "wmdp-bio" / "test-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"test-00000-of-00001.parquet row 1: field 'answer' is the string"):
        validate_hub_layout(root, {"cais/wmdp": ["wmdp-bio"]})


def _answers(task_set: TaskSet) -> list[int]:
    task = make_task_manager(task_set).load(["wmdp_bio"])["tasks"]["wmdp_bio"]
    return [doc["answer"] for doc in task.test_docs()]


def test_a_root_edited_in_place_is_re_read(root: Path) -> None:
    """Same file names, sizes and mtimes, other answers: only the content tells the two apart."""
    first = real_task_set(root)
    before = _answers(first)
    path = root / "cais" / "wmdp" / "wmdp-bio" / "test.jsonl"
    stat = path.stat()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "answer": (r["answer"] + 1) % 4}) + "\n" for r in rows))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    second = real_task_set(root)
    assert second.include_path != first.include_path
    assert _answers(second) == [(a + 1) % 4 for a in before] != before


def test_configs_mixing_file_formats_are_rejected(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = root / "cais" / "mmlu"
    for split in ("test", "dev"):
        rows = [json.loads(line) for line in (repo / "anatomy" / f"{split}.jsonl").read_text().splitlines()]
        (repo / "anatomy" / f"{split}.jsonl").unlink()
        pq.write_table(pa.Table.from_pylist(rows), repo / "anatomy" / f"{split}.parquet")
    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace("anatomy/test.jsonl", "anatomy/test.parquet")
                      .replace("anatomy/dev.jsonl", "anatomy/dev.parquet"))
    with pytest.raises(DataError) as err:
        real_task_set(root)
    assert str(err.value).startswith(f"{readme.resolve()}: configs mix file formats (.jsonl in 'abstract_algebra', "
                                     f".parquet in 'anatomy')") and "\n" not in str(err.value)
    assert not (root / ".lmeval_tasks").exists()


def test_front_matter_is_split_the_way_datasets_does(root: Path, tmp_path: Path) -> None:
    import datasets

    readme = root / "cais" / "wmdp" / "README.md"
    readme.write_text(readme.read_text().replace("configs:", "pretty_name: WMDP --- bio subset\nconfigs:", 1))
    assert validate_hub_layout(root, {"cais/wmdp": ["wmdp-bio"]}) == 20
    rows = datasets.load_dataset(str(readme.parent), "wmdp-bio", split="test", cache_dir=str(tmp_path / "cache"))
    assert len(rows) == 20  # datasets reads the same front matter
    readme.write_text(readme.read_text().replace("---\n\nSynthetic", "\nSynthetic"))  # never closed
    with pytest.raises(DataError, match="field 'configs' missing from the '---' YAML front matter"):
        validate_hub_layout(root, {"cais/wmdp": ["wmdp-bio"]})
