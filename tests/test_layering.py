"""Layering: ``tuner`` may import ``trainables``, never the reverse (not even lazily inside a function).

What runs inside Ray Train workers (``trainables/``, the evaluation stage included) must not depend on the
search service; the service imports it downward.
"""

from __future__ import annotations

import ast
from pathlib import Path

TRAINABLES = Path(__file__).resolve().parents[1] / "trainables"


def _tuner_imports(path: Path) -> list[str]:
    """``file:line module`` for every import of ``tuner`` or a submodule of it anywhere in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [f"{path}:{node.lineno} {m}" for m in modules if m == "tuner" or m.startswith("tuner.")]
    return found


def test_trainables_never_imports_tuner() -> None:
    files = sorted(TRAINABLES.rglob("*.py"))
    assert len(files) > 10, f"no trainables sources found under {TRAINABLES}"
    offending = [hit for path in files for hit in _tuner_imports(path)]
    assert not offending, "trainables/ imports tuner (move the code down into trainables/):\n" + "\n".join(offending)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "lazy.py"
    src.write_text("def f():\n    from tuner.run import main\n    import tuner.report as r\n    return main, r\n")
    assert [hit.split()[-1] for hit in _tuner_imports(src)] == ["tuner.run", "tuner.report"]
