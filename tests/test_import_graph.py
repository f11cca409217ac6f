"""Dependencies point one way (STYLE.md): no module of the package or of the
claude-code template imports, even for typing only, a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = {
    "runtime_adapter": ROOT / "runtime_adapter",
    "claude_code_adapter": ROOT / "templates" / "claude-code" / "claude_code_adapter",
}


def module_name(package: str, base: Path, path: Path) -> str:
    parts = [package, *path.relative_to(base).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(package: str, base: Path) -> dict[str, set[str]]:
    """Each module's imports of its own package's modules, at module level (typing
    blocks included; imports inside functions are deferred on purpose and left out)."""
    graph: dict[str, set[str]] = {}
    for path in base.rglob("*.py"):
        name = module_name(package, base, path)
        is_package = path.name == "__init__.py"
        found: set[str] = set()
        tree = ast.parse(path.read_text())
        nodes = list(tree.body)
        while nodes:
            node = nodes.pop()
            if isinstance(node, ast.If):  # if TYPE_CHECKING:
                nodes.extend(node.body)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    target = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if target.split(".")[0] == package:
                    found.add(target)
                    found.update(f"{target}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        graph[name] = found
    return {
        name: {t for t in targets if t in graph and t != name} for name, targets in graph.items()
    }


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            if not target.endswith("__init__") and graph.get(target) is not None:
                found = visit(target, [*path, node])
                if found:
                    return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_circle(package: str) -> None:
    graph = imports(package, PACKAGES[package])
    # a package's __init__ re-exports its modules: an edge into it is not a layer
    for targets in graph.values():
        targets.discard(package)
    assert cycle(graph) is None
