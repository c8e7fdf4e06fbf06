"""The package layout: imports flow one way (bitstream <- codec.families <- codec.decoding <- codec.encoding),
with no import circle in codec/ or bitstream/, counting imports inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules a file imports (at module level or inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from package import submodule" imports the submodule; "from module import name" the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # "bitstream.entropy.X" -> "bitstream.entropy"
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    files = [p for top in ("codec", "bitstream") for p in (ROOT / top).rglob("*.py")]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) for p in files}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert cycles(graph()) == []


def test_a_circle_is_found():  # the check itself can fail
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _imports_package(edges, module: str, package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in edges[module])


@pytest.mark.parametrize("lower,upper", [("bitstream", "codec"), ("codec.families", "codec.encoding"),
                                         ("codec.families", "codec.decoding"), ("codec.decoding", "codec.encoding")])
def test_imports_flow_one_way(lower, upper):
    edges = graph()
    wrong = [m for m in edges if (m == lower or m.startswith(lower + ".")) and _imports_package(edges, m, upper)]
    assert wrong == []


def test_each_family_is_one_folder_with_a_module_and_an_evaluator():
    from bitstream import ARCHITECTURES
    from codec.families.registry import FAMILIES

    assert set(FAMILIES) == set(ARCHITECTURES)
    for family in FAMILIES.values():
        folder = ROOT / "codec" / "families" / family.folder
        assert (folder / "model.py").is_file() and (folder / "numpy.py").is_file()
        assert callable(family.numpy().evaluate) and family.model_class().arch_id == family.arch_id
        assert callable(family.encode_module().encode)
