"""Layering: imports point one way, never the reverse (not even lazily inside a function).

* ``tuner`` may import ``trainables``, never the reverse: what runs inside Ray Train workers (``trainables/``,
  the evaluation stage included) must not depend on the search service; the service imports it downward.
* ``tuner.bench_search`` (the replay benchmark) may import the service, never the reverse: no module outside
  ``tuner/bench_search/`` imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINABLES = ROOT / "trainables"
BENCH = ROOT / "tuner" / "bench_search"


def _imports_of(path: Path, package: str) -> list[str]:
    """``file:line module`` for every import of ``package`` or a submodule of it anywhere in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [f"{path}:{node.lineno} {m}" for m in modules if m == package or m.startswith(package + ".")]
    return found


def test_trainables_never_imports_tuner() -> None:
    files = sorted(TRAINABLES.rglob("*.py"))
    assert len(files) > 10, f"no trainables sources found under {TRAINABLES}"
    offending = [hit for path in files for hit in _imports_of(path, "tuner")]
    assert not offending, "trainables/ imports tuner (move the code down into trainables/):\n" + "\n".join(offending)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "lazy.py"
    src.write_text("def f():\n    from tuner.run import main\n    import tuner.report as r\n    return main, r\n")
    assert [hit.split()[-1] for hit in _imports_of(src, "tuner")] == ["tuner.run", "tuner.report"]


def test_only_the_benchmark_imports_the_benchmark() -> None:
    files = [p for d in ("tuner", "trainables", "search_spaces", "cluster") for p in sorted((ROOT / d).rglob("*.py"))
             if BENCH not in p.parents]
    assert len(files) > 50, f"no sources found under {ROOT}"
    offending = [hit for path in files for hit in _imports_of(path, "tuner.bench_search")]
    assert not offending, ("the service imports its benchmark (move the code into the service, e.g. "
                           "tuner/boundary_search/):\n" + "\n".join(offending))
