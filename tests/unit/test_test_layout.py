"""The tests' own shape: a test module imports no other test module. Shared fixtures and
builders live in named helper modules (tests/builders.py, tests/*_env.py, conftest.py), so
collecting one module never runs another's tests or fixtures twice."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(dotted: str) -> bool:
    return dotted.rpartition(".")[2].startswith("test_")


def imported_test_modules(path: Path) -> list[str]:
    """The test_* modules `path` imports (absolute or relative, `from x import test_y` too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if _is_test_module(module):
                found.append(module)
            found += [f"{module}.{a.name}" for a in node.names if _is_test_module(a.name)]
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(TESTS)): imported
        for path in sorted(TESTS.rglob("test_*.py"))
        if (imported := imported_test_modules(path))
    }
    assert offenders == {}


def test_the_scan_sees_such_imports(tmp_path: Path) -> None:
    # The check above passes on a scan that finds nothing: prove it finds each form.
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "from tests.api.test_reports import create\n"
        "import tests.integration.test_exchange_reports\n"
        "from .test_audit import _draft\n"
        "from tests.api import test_monitoring\n"
        "from tests.builders import draft\n"
    )
    assert imported_test_modules(sample) == [
        "tests.api.test_reports",
        "tests.integration.test_exchange_reports",
        ".test_audit",
        "tests.api.test_monitoring",
    ]
