"""A reader holds one class at a time (STYLE.md, redesign step 2): no class of the
package, its testing package or the claude-code template is over 250 lines, and the
supervisor's module stays under 350."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
LIMIT = 250


def test_no_class_is_over_250_lines() -> None:
    found = []
    for base in (ROOT / "runtime_adapter", ROOT / "templates" / "claude-code"):
        for path in base.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                    size = node.end_lineno - node.lineno + 1
                    if size > LIMIT:
                        found.append(f"{path.relative_to(ROOT)}: {node.name} {size} lines")
    assert found == []


def test_the_supervisor_module_is_short() -> None:
    assert len((ROOT / "runtime_adapter" / "lifecycle.py").read_text().splitlines()) <= 350
