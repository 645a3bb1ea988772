"""The package's shape: imports point one way, so no two modules depend on each other."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every ram module that ``path`` imports, at module level or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from . import x" imports the submodule x when there is one, else a name of the package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted((SRC / "ram").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules, or None. Importing a submodule runs its package's
    __init__ first, but a package importing its own submodules is how packages re-export,
    so only the edges the code writes count."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_made_by_a_function_level_import(tmp_path, monkeypatch):
    pkg = tmp_path / "ram"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    assert find_cycle(import_graph()) == ["ram.a", "ram.b", "ram.a"]


@pytest.mark.parametrize("low, high", [("ram.model", "ram.training"), ("ram.model", "ram.commands"),
                                        ("ram.model", "ram.catch"), ("ram.data", "ram.model"),
                                        ("ram.training", "ram.commands"), ("ram.catch", "ram.commands")])
def test_lower_layers_import_nothing_from_higher_ones(low, high):
    offending = {m: sorted(i for i in deps if i == high or i.startswith(high + "."))
                 for m, deps in import_graph().items() if m == low or m.startswith(low + ".")}
    assert not any(offending.values()), f"{low} imports {high}: {offending}"


def test_the_public_api_is_importable_from_the_package():
    from ram import Config, RecurrentAttention, Retina, hybrid_loss
    assert all(obj.__doc__ for obj in (Config, RecurrentAttention, Retina, hybrid_loss))


def test_no_module_is_much_over_300_lines():
    long = {str(p.relative_to(SRC)): n for p in (SRC / "ram").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 320}
    assert not long, f"split these modules: {long}"
