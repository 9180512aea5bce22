"""Code shape: every module stays readable in one sitting and every function fits on a screen.

Limits: no module of the code base over 500 lines, no function over 80 (tests are exempt).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "services", "ptzjepa", "bench", "deploy")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES if (ROOT / package).is_dir()
                  for path in (ROOT / package).rglob("*.py"))


def long_functions(tree: ast.AST) -> list[str]:
    return [f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_the_code_base_has_sources():
    assert len(sources()) > 20


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_and_functions_are_short(path: Path):
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_MODULE_LINES, f"{text.count(chr(10))} lines"
    assert long_functions(ast.parse(text, filename=str(path))) == []
