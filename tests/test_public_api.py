"""The public face (edgematte.edge.load / remove / list_models) and the lazy verb table of the command."""
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgematte.edge import InputError, ModelFileError, list_models, load, remove
from edgematte.edge import cli, verbs

ROOT = Path(__file__).resolve().parents[1]
IMAGE = sorted((ROOT / "calib_data").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def sod():
    return load("sod")


def test_list_models_names_the_shipped_defaults():
    names = list_models()
    assert "sod" in names and names == sorted(names)


def test_load_by_name_and_by_path_give_the_same_alpha(sod):
    from edgematte.edge.zoo import path_for

    bgr = cv2.imread(str(IMAGE))
    by_path = load(path_for("sod"))
    np.testing.assert_array_equal(sod.predict(bgr), by_path.predict(bgr))
    assert sod.card.task in ("saliency", "alpha")


def test_load_unknown_name_lists_what_is_installed():
    with pytest.raises(ModelFileError, match="installed: .*sod"):
        load("no_such_model")


def test_remove_cutout_is_the_image_with_the_predicted_alpha(sod):
    bgr = cv2.imread(str(IMAGE))
    out = remove(IMAGE, session=sod)
    assert out.shape == bgr.shape[:2] + (4,) and out.dtype == np.uint8
    mask = remove(bgr, op="mask", session=sod)
    assert mask.shape == bgr.shape[:2] and mask.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 3], mask)
    assert 0 < mask.mean() < 255  # a real prediction: neither all background nor all foreground


def test_rgb_input_gives_rgb_output_with_the_same_alpha(sod):
    bgr = cv2.imread(str(IMAGE))
    from_bgr = remove(bgr, session=sod)
    from_rgb = remove(np.ascontiguousarray(bgr[:, :, ::-1]), channels="rgb", session=sod)
    np.testing.assert_array_equal(from_rgb[:, :, 3], from_bgr[:, :, 3])
    np.testing.assert_array_equal(from_rgb[:, :, :3], from_bgr[:, :, 2::-1])


@pytest.mark.parametrize("op", ["blur", "replace"])
def test_picture_ops_keep_the_image_size(sod, op):
    bgr = cv2.imread(str(IMAGE))
    out = remove(bgr, op=op, session=sod)
    assert out.shape == bgr.shape and out.dtype == np.uint8
    assert not np.array_equal(out, bgr)


@pytest.mark.parametrize("kwargs, message", [
    ({"op": "sharpen"}, "op must be one of"),
    ({"channels": "bgra"}, "channels must be one of"),
])
def test_remove_refuses_unknown_choices(sod, kwargs, message):
    with pytest.raises(InputError, match=message):
        remove(cv2.imread(str(IMAGE)), session=sod, **kwargs)


def test_remove_refuses_what_is_not_an_image(sod):
    with pytest.raises(InputError):
        remove(np.zeros((4, 4), np.float32), session=sod)


# -- the lazy verb table ------------------------------------------------------------------------------
def test_every_verb_in_the_table_is_registered_by_its_module():
    parser = cli.build_parser()  # every verb whose extra is installed (torch is, in the test environment)
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(verbs.VERBS) <= set(choices)
    for name in verbs.VERBS:  # each alone too: its module registers it
        sub = next(a for a in cli.build_parser([name])._actions if a.dest == "command").choices
        assert name in sub


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_help_imports_no_verb_module_and_a_verb_imports_only_its_own():
    result = _run("""
        import sys
        from edgematte.edge.cli import build_parser
        build_parser([])
        print(sorted(m for m in sys.modules if m.startswith(("edgematte.export", "edgematte.train",
                                                              "edgematte.compress", "torch", "edgematte.edge.bench"))))
        build_parser(["mask"])
        print("torch" in sys.modules, "edgematte.edge.bench" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "False False"]


BLOCK_TORCH = """
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError("No module named 'torch'", name="torch")
            return None
    sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize("verb", [name for name, v in verbs.VERBS.items() if v.extra == "train"])
def test_a_verb_whose_extra_is_missing_says_which_to_install(verb):
    result = _run(textwrap.dedent(BLOCK_TORCH) + textwrap.dedent("""
        from edgematte.edge.cli import main
        sys.exit(main([{!r}, "x"]))
    """).format(verb))
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert lines[0] == ("edgematte: error: `edgematte {}` needs the 'torch' package: pip install "
                        "'edgematte[train]'".format(verb))


def test_help_marks_the_verbs_whose_extra_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(verbs.EXTRA_PROBE, "train", "edgematte_no_such_package")
    with pytest.raises(SystemExit):
        cli.build_parser(["--help"]).parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "train a zoo model on a dataset folder (resumable, DDP-ready) [needs: pip install 'edgematte[train]']" \
        in text
    assert "blur the background behind the subject (bokeh) [needs" not in text


def test_the_readme_python_example_runs_without_torch(tmp_path):
    """The README's Python block, verbatim, on a base install (torch, nncf, onnx hidden), on a real photo."""
    import shutil

    text = (ROOT / "README.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "from edgematte.edge import load, remove" in block
    shutil.copy(IMAGE, tmp_path / "photo.jpg")
    guard = textwrap.dedent(BLOCK_TORCH).replace('name == "torch" or name.startswith("torch.")',
                                                 'name.split(".")[0] in ("torch", "nncf", "onnx", "onnxruntime")')
    result = subprocess.run([sys.executable, "-c", guard + block + "\nprint('torch' in sys.modules)"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'sod'" in result.stdout and result.stdout.strip().endswith("False")
