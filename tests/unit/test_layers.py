"""The package tree is the architecture: every import inside harvey points down (or sideways within a
package), never up. A module may import its own package and any package of a lower layer."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "shared" / "harvey"

# Lowest first. Same layer: independent packages that may not import each other.
LAYERS: list[set[str]] = [
    {"config", "portuguese", "pool", "sockets"},
    {"metrics", "schemas", "pii", "faithfulness"},
    {"logs", "events"},
    {"store"},
    {"intake"},
    {"search"},
    {"drafting"},
    {"ops", "export", "review"},
    {"edge"},
    {"api", "evaluation"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """'harvey.search.retrieval' -> 'search'."""
    return module.split(".")[1]


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harvey."):
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "harvey":
            found += [f"harvey.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("harvey.")]
    return found


def test_every_top_level_module_and_package_has_a_layer():
    names = {p.stem for p in LIB.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in LIB.iterdir() if (p / "__init__.py").exists()}
    assert names <= set(RANK), f"give these a layer: {sorted(names - set(RANK))}"


def test_no_module_imports_from_a_layer_above_or_beside_it():
    wrong = []
    for path in LIB.rglob("*.py"):
        relative = path.relative_to(LIB.parent).with_suffix("")
        if len(relative.parts) < 2 or relative.parts[1] == "__init__":
            continue
        own = relative.parts[1]
        for module in _imports(path):
            other = _unit(module)
            if other != own and (RANK[other] > RANK[own] or (RANK[other] == RANK[own])):
                wrong.append(f"{'/'.join(relative.parts)} imports {module}")
    assert not wrong, "\n".join(sorted(wrong))
