"""No function of the package (features/, models/, pipelines/) is longer than MAX_LINES lines.

A long function is split along its sections (see ``report.build_context``). ``LONG_FUNCTIONS`` lists the
ones not split yet, each with the reason; an entry that is no longer needed fails the test, so the list
only shrinks.
"""

from __future__ import annotations

import ast

from tests.conftest import REPO

MAX_LINES = 80
PACKAGE = ("features", "models", "pipelines")

LONG_FUNCTIONS: dict[str, str] = {}  # path::function -> why it is longer; empty: none is


def function_lengths(root=REPO, folders=PACKAGE) -> dict[str, int]:
    """``path::Class.function`` -> lines from ``def`` to the last line of the body, for every function
    in the ``.py`` files under ``folders`` of ``root``."""
    found: dict[str, int] = {}

    def walk(node: ast.AST, path: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[f"{path}::{prefix}{child.name}"] = child.end_lineno - child.lineno + 1
                walk(child, path, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, path, f"{prefix}{child.name}.")

    for folder in folders:
        for file in sorted((root / folder).rglob("*.py")):
            path = file.relative_to(root).as_posix()
            walk(ast.parse(file.read_text(encoding="utf-8"), filename=path), path, "")
    return found


def test_no_function_is_longer_than_the_limit():
    lengths = function_lengths()
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in LONG_FUNCTIONS}
    assert not too_long, f"functions over {MAX_LINES} lines (split them, or add them with a reason): {too_long}"


def test_the_allow_list_names_only_long_functions():
    lengths = function_lengths()
    stale = {name: lengths.get(name) for name in LONG_FUNCTIONS if lengths.get(name, 0) <= MAX_LINES}
    assert not stale, f"allow-listed but missing or now short enough (remove them from LONG_FUNCTIONS): {stale}"
    assert all(reason.strip() for reason in LONG_FUNCTIONS.values())


def test_the_measure_counts_methods_and_nested_functions(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "m.py").write_text(
        "class A:\n    @property\n    def f(self):\n        def g():\n            return 1\n\n        return g\n\n\n"
        "async def h():\n    pass\n"
    )
    assert function_lengths(tmp_path, ("pkg",)) == {
        "pkg/sub/m.py::A.f": 5,
        "pkg/sub/m.py::A.f.g": 2,
        "pkg/sub/m.py::h": 2,
    }
