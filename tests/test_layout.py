"""Architecture rules: edge/ never imports torch or the other packages, and stays Python 3.8 syntax."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EDGE_FILES = sorted((ROOT / "edge").rglob("*.py"))
FORBIDDEN = {"torch", "torchvision", "torch_pruning", "nncf", "onnx", "onnxruntime", "train", "export",
             "compress", "edgematte.train", "edgematte.export", "edgematte.compress"}


def _imported_modules(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


@pytest.mark.parametrize("path", EDGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_edge_file_is_py38_and_torch_free(path: Path) -> None:
    source = path.read_text()
    tree = ast.parse(source, filename=str(path), feature_version=(3, 8))
    for name in _imported_modules(tree):
        top = name.split(".")[0]
        assert top not in FORBIDDEN and not any(name.startswith(f + ".") or name == f for f in FORBIDDEN), (
            "{} imports {}".format(path.name, name))


def test_edge_files_exist() -> None:
    assert len(EDGE_FILES) >= 4


def test_importing_edge_loads_no_torch() -> None:
    code = ("import sys, edgematte.edge, edgematte.edge.cli; "
            "import importlib; [importlib.import_module('edgematte.edge.' + m) for m in "
            "('card', 'errors', '_ov')]; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'nncf', 'torch_pruning')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bare_package_names_not_installed() -> None:
    """The namespace mapping must not leak `edge`, `train`, ... as top-level packages."""
    code = ("import importlib.util, sys; sys.path = [p for p in sys.path if p not in ('', '.', {!r})]; "
            "print([n for n in ('edge', 'export', 'compress', 'train') "
            "if (s := importlib.util.find_spec(n)) and 'site-packages' in str(s.origin)])").format(str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_every_subpackage_is_listed_in_setup_cfg() -> None:
    """A folder with __init__.py that setup.cfg does not list would be missing from a regular install."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    found = set()
    for top in ("edge", "export", "compress", "train"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add("edgematte." + ".".join(rel.parts))
    assert found <= listed, "not in setup.cfg packages: {}".format(sorted(found - listed))
