"""The C++ sample (edge/cpp) builds against the pip wheel's OpenVINO and writes the Python runtime's mask."""
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_scene
from edge_tiny import build_ir
from edgematte.edge.runtime import load_model

CPP = Path(__file__).resolve().parents[1] / "edge" / "cpp"
pytestmark = pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("c++")), reason="needs cmake and c++")


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    import openvino

    build = tmp_path_factory.mktemp("cppbuild")
    cmake_dir = os.path.join(os.path.dirname(openvino.__file__), "cmake")
    for cmd in (["cmake", "-S", str(CPP), "-B", str(build), "-DOpenVINO_DIR=" + cmake_dir],
                ["cmake", "--build", str(build), "-j2"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return build / "edgematte_mask"


def _run(binary, *args):
    return subprocess.run([str(binary)] + [str(a) for a in args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("task,size,image_hw", [("saliency", (48, 64), (48, 64)), ("trimap", (32, 40), (32, 40)),
                                                ("saliency", (48, 64), (96, 160)), ("saliency", (48, 64), (60, 90))])
def test_cpp_mask_matches_python(tmp_path, binary, task, size, image_hw):
    """Within 1/255 at the IR's size; resized images differ where Python shrinks by area (C++: bilinear)."""
    xml = build_ir(tmp_path / "m", size=size, task=task)
    image, _ = make_scene(*image_hw, seed=7)
    cv2.imwrite(str(tmp_path / "in.ppm"), image)
    result = _run(binary, xml, tmp_path / "in.ppm", tmp_path / "mask.pgm")
    assert result.returncode == 0, result.stderr
    cpp = cv2.imread(str(tmp_path / "mask.pgm"), cv2.IMREAD_UNCHANGED)
    alpha = load_model(str(xml)).predict(image)
    python = np.round((alpha[..., -1] if alpha.ndim == 3 else alpha) * 255.0).astype(np.int16)
    assert cpp.shape == image_hw and cpp.dtype == np.uint8
    diff = np.abs(cpp.astype(np.int16) - python)
    if image_hw == size:
        assert int(diff.max()) <= 1
    else:
        assert float(diff.mean()) < 4 and np.corrcoef(cpp.ravel(), python.ravel())[0, 1] > 0.9
    assert cpp.std() > 1  # a real mask, not a constant


def test_cpp_errors_are_one_line(tmp_path, binary):
    xml = build_ir(tmp_path / "m", size=(16, 16))
    (tmp_path / "bad.ppm").write_bytes(b"P6\n16 16\n255\n" + b"\0" * 10)  # truncated pixels
    for args in ((xml, tmp_path / "missing.ppm", tmp_path / "o.pgm"), (xml, tmp_path / "bad.ppm", tmp_path / "o.pgm"),
                 (tmp_path / "nope.xml", tmp_path / "bad.ppm", tmp_path / "o.pgm")):
        result = _run(binary, *args)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "o.pgm").exists()
    assert _run(binary).returncode == 2
