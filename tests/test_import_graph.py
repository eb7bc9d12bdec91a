"""The import graph: no module-level import cycle anywhere in the kit, and the box runtime (what a flashed box
runs: load a model, run the effect verbs on files and live inputs) imports none of the kit's tool modules."""
import ast
import sys
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"edge": "edgematte.edge", "export": "edgematte.export", "compress": "edgematte.compress",
            "train": "edgematte.train"}
# The tools in edge/: datasets, scoring, benchmarks, bundles and their checks. A box needs none of them to run.
EDGE_TOOLS = {"bench", "bundle", "bundle_tar", "signing", "datasets", "metrics", "evaluate", "ncs2", "dump", "clip",
              "video_bench"}


def _modules() -> Dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "cpp" in path.parts:
                continue
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package] + parts)] = path
    return found


def _module_level_imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """Kit modules `name` imports when it is imported (top-level statements, also inside if/try; not inside
    functions, which import when they run)."""
    tree = ast.parse(path.read_text())
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    deps = set()
    nodes = []  # type: List[ast.AST]
    for statement in tree.body:
        nodes += list(ast.walk(statement)) if isinstance(statement, (ast.If, ast.Try)) else [statement]
    for node in nodes:
        if isinstance(node, ast.Import):
            deps |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - (node.level - 1)] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
            if target in known:
                deps.add(target)
            deps |= {target + "." + alias.name for alias in node.names if target + "." + alias.name in known}
    return deps - {name}


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    return {name: _module_level_imports(name, path, set(modules)) for name, path in modules.items()}


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_real_imports():
    graph = _graph()
    assert "edgematte.edge.runtime" in graph["edgematte.edge.api"] or "edgematte.edge.errors" in graph[
        "edgematte.edge.api"]
    assert "edgematte.edge.card" in graph["edgematte.edge.runtime"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_box_runtime_imports_no_tool_module():
    graph = _graph()
    tools = {"edgematte.edge." + t for t in EDGE_TOOLS}
    box = [m for m in graph if m.startswith("edgematte.edge") and m not in tools and not m.startswith(
        "edgematte.edge.zoo.")]
    assert "edgematte.edge.runtime" in box and "edgematte.edge.commands" in box
    reached, todo = set(), list(box)
    while todo:  # everything the box modules pull in when they are imported, transitively
        for dep in graph[todo.pop()]:
            if dep not in reached:
                reached.add(dep)
                todo.append(dep)
    assert not reached & tools, sorted(reached & tools)
    assert not {m for m in reached if not m.startswith("edgematte.edge")}, "the box runtime imports train/export"
