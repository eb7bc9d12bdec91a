"""`edgematte dump` / `verify-dump`: exact tensors on disk, and outputs from elsewhere checked with task metrics."""
import json

import cv2
import numpy as np

from conftest import make_scene
from edge_tiny import build_ir
from edgematte.edge.cli import main
from edgematte.edge.runtime import load_model


def _images(folder, n=3):
    paths = []
    for i in range(n):
        image, _ = make_scene(40 + 8 * i, 60, seed=i)
        path = folder / "img{}.png".format(i)
        cv2.imwrite(str(path), image)
        paths.append(str(path))
    return paths


def test_dump_writes_exact_tensors_and_verify_accepts_a_copy(tmp_path, capsys):
    xml = build_ir(tmp_path / "m", size=(24, 32))
    images = _images(tmp_path)
    assert main(["dump", str(xml)] + images + ["-o", str(tmp_path / "d")]) == 0
    index = json.loads((tmp_path / "d" / "index.json").read_text())
    assert [i["stem"] for i in index["items"]] == ["img0", "img1", "img2"] and index["card"]["input_size"] == [24, 32]
    item = index["items"][0]
    assert item["input"]["shape"] == [1, 24, 32, 3] and item["input"]["dtype"] == "uint8"
    x = np.fromfile(str(tmp_path / "d" / item["input"]["file"]), np.uint8).reshape(item["input"]["shape"])
    y = np.fromfile(str(tmp_path / "d" / item["output"]["file"]), np.float32).reshape(item["output"]["shape"])
    predictor = load_model(str(xml))
    assert np.array_equal(predictor.infer(x), y)  # the dumped input reproduces the dumped output exactly
    other = tmp_path / "other"
    other.mkdir()
    for it in index["items"]:
        data = np.fromfile(str(tmp_path / "d" / it["output"]["file"]), np.float32)
        (data + np.float32(0.001)).tofile(str(other / (it["stem"] + ".bin")))  # another device, tiny drift
    capsys.readouterr()
    assert main(["verify-dump", str(tmp_path / "d"), "--outputs", str(other)]) == 0
    assert "all 3 outputs within" in capsys.readouterr().out


def test_verify_dump_fails_on_drift_and_bad_files(tmp_path, capsys):
    xml = build_ir(tmp_path / "m", size=(24, 32))
    images = _images(tmp_path, 2)
    main(["dump", str(xml)] + images + ["-o", str(tmp_path / "d")])
    index = json.loads((tmp_path / "d" / "index.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    for it in index["items"]:
        data = np.fromfile(str(tmp_path / "d" / it["output"]["file"]), np.float32)
        (1.0 - data).tofile(str(other / (it["stem"] + ".bin")))  # a broken board: inverted mask
    capsys.readouterr()
    assert main(["verify-dump", str(tmp_path / "d"), "--outputs", str(other)]) == 1
    assert "FAIL" in capsys.readouterr().out
    (other / "img1.bin").write_bytes(b"\0" * 10)  # truncated
    assert main(["verify-dump", str(tmp_path / "d"), "--outputs", str(other)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "img1.bin" in err[0] and "bytes" in err[0]
    assert main(["verify-dump", str(tmp_path), "--outputs", str(other)]) == 1  # not a dump folder
    assert main(["dump", str(xml), str(tmp_path / "missing.png"), "-o", str(tmp_path / "e")]) == 1
    assert not (tmp_path / "e").exists()  # nothing half-written
