"""evaluate() and the `edgematte eval` verb on tiny synthetic pairs; the mediapipe peer on real portraits."""
import json
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import pytest

from conftest import make_scene
from edgematte.edge.card import ModelCard
from edgematte.edge.cli import main
from edgematte.edge.datasets import find_pairs
from edgematte.edge.errors import InputError
from edgematte.edge.evaluate import EvalReport, evaluate, is_soft, select_pairs, summary_table
from edgematte.edge.foreign import PreprocSpec

ov = pytest.importorskip("openvino")
ops = pytest.importorskip("openvino.opset8")

H, W = 48, 64


def make_pairs(root: Path, count: int = 4, binary_from: int = 3) -> Path:
    """images/ + masks/ pairs whose green channel *is* the alpha; masks from `binary_from` on are hard 0/1."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        image, alpha = make_scene(H, W, seed=i)
        if i >= binary_from:
            alpha = (alpha > 0.5).astype(np.float32)
        alpha8 = np.round(alpha * 255).astype(np.uint8)
        image[..., 1] = alpha8
        name = "{}_{}".format("cat" if i % 2 else "dog", i)
        cv2.imwrite(str(root / "images" / (name + ".png")), image)
        cv2.imwrite(str(root / "masks" / (name + ".png")), alpha8)
    return root


def green_model(tmp_path: Path) -> tuple:
    """An identity IR at the pairs' size and the spec that reads its green channel: a perfect predictor."""
    x = ops.parameter([1, 3, H, W], ov.Type.f32, name="x")
    model = tmp_path / "green.xml"
    ov.save_model(ov.Model([ops.multiply(x, ops.constant(np.float32(1.0)))], [x], "green"), str(model))
    spec = tmp_path / "green.json"
    PreprocSpec([H, W], layout="NCHW", color="BGR", std=[255.0], channel=1, name="green").save(spec)
    return model, spec


class ConstantPredictor:
    """A duck-typed Predictor that answers the same map (alpha or trimap probabilities) for every image."""

    def __init__(self, value: np.ndarray, task: str = "alpha") -> None:
        self.value = value
        self.card = ModelCard(name="const", task=task, arch="test")

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        return self.value

    def predict_many(self, images: Iterable[np.ndarray], nireq: int = 0) -> Iterator[np.ndarray]:
        for image in images:
            yield self.predict(image)


def test_is_soft() -> None:
    _, alpha = make_scene(H, W)
    assert is_soft(alpha)
    assert not is_soft((alpha > 0.5).astype(np.float32))
    assert not is_soft(np.zeros((10, 10), np.uint8))


def test_evaluate_perfect_predictor(tmp_path: Path) -> None:
    from edgematte.edge.foreign import ForeignPredictor, load_spec

    data = make_pairs(tmp_path / "data")
    model, spec = green_model(tmp_path)
    report = evaluate(ForeignPredictor(model, load_spec(str(spec))), find_pairs(data), progress=False, sod=False)
    assert [r["stem"] for r in report.records] == ["cat_1", "cat_3", "dog_0", "dog_2"]
    assert all(r["iou"] == 1.0 and r["boundary_iou"] == 1.0 and r["mae"] < 1e-6 for r in report.records)
    soft = {r["stem"]: r["soft"] for r in report.records}
    assert soft == {"dog_0": True, "cat_1": True, "dog_2": True, "cat_3": False}
    assert "conn" in report.records[0] and "conn" not in report.records[1]
    s = report.summary
    assert s["images"] == 4 and s["soft_images"] == 3 and s["mean"]["iou"] == 1.0
    assert s["matting"]["sad"] < 1e-3 and s["sod"] == {}
    assert EvalReport.from_dict(json.loads(report.to_json())) == report


def test_evaluate_scores_a_wrong_predictor_and_a_trimap(tmp_path: Path) -> None:
    pytest.importorskip("py_sod_metrics")
    pairs = find_pairs(make_pairs(tmp_path / "data", count=3))
    empty = evaluate(ConstantPredictor(np.zeros((H, W), np.float32)), pairs, progress=False, soft_gt=False)
    assert empty.summary["mean"]["iou"] == 0.0 and empty.summary["soft_images"] == 0
    assert set(empty.summary["sod"]) >= {"mae", "maxF", "meanF", "S", "maxE", "meanE"}
    trimap = np.zeros((H, W, 3), np.float32)
    trimap[..., 1] = 1.0  # all unknown: expected alpha 0.5 everywhere
    half = evaluate(ConstantPredictor(trimap, task="trimap"), pairs, progress=False, sod=False, soft_gt=True)
    from edgematte.edge.datasets import read_pair

    gts = [read_pair(p)[1] for p in pairs]
    # alpha 0.5 reaches the 0.5 threshold: everything is foreground, so IoU = foreground share
    assert half.summary["mean"]["iou"] == pytest.approx(np.mean([np.mean(g >= 0.5) for g in gts]))
    assert half.summary["matting"]["mad"] == pytest.approx(np.mean([np.mean(np.abs(g - 0.5)) for g in gts]), rel=1e-6)
    table = summary_table([empty, half])
    assert "const" in table and "maxF" in table and "SAD" in table


def test_evaluate_rejects_size_mismatch_and_empty(tmp_path: Path) -> None:
    pairs = find_pairs(make_pairs(tmp_path / "data", count=1))
    with pytest.raises(InputError, match="differs"):
        evaluate(ConstantPredictor(np.zeros((5, 5), np.float32)), pairs, progress=False, sod=False)
    with pytest.raises(InputError, match="no image/mask pairs"):
        evaluate(ConstantPredictor(np.zeros((5, 5), np.float32)), [], progress=False, sod=False)


def test_select_pairs(tmp_path: Path) -> None:
    pairs = find_pairs(make_pairs(tmp_path / "data"))
    assert [p.stem for p in select_pairs(pairs, "dog_*")] == ["dog_0", "dog_2"]
    assert [p.stem for p in select_pairs(pairs, None, 3)] == ["cat_1", "cat_3", "dog_0"]
    assert select_pairs(pairs, "bird*") == []


def test_eval_cli_writes_json(tmp_path: Path, capsys) -> None:
    pytest.importorskip("py_sod_metrics")
    data = make_pairs(tmp_path / "data")
    model, spec = green_model(tmp_path)
    out = tmp_path / "out" / "eval.json"
    code = main(["eval", str(model), str(data), "--spec", str(spec), "--json", str(out), "--filter", "dog_*",
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "green" in printed and "IoU" in printed
    report = json.loads(out.read_text())
    assert [r["stem"] for r in report["records"]] == ["dog_0", "dog_2"]
    assert report["summary"]["images"] == 2 and report["summary"]["mean"]["iou"] == 1.0
    assert report["summary"]["sod"]["maxF"] > 0.99
    assert report["meta"]["filter"] == "dog_*"
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # atomic: no temp file left


def test_eval_cli_limit_and_errors(tmp_path: Path, capsys) -> None:
    data = make_pairs(tmp_path / "data")
    model, spec = green_model(tmp_path)
    out = tmp_path / "e.json"
    assert main(["eval", str(model), str(data), "--spec", str(spec), "--json", str(out), "--limit", "1",
                 "--no-sod", "--no-progress"]) == 0
    assert len(json.loads(out.read_text())["records"]) == 1
    capsys.readouterr()
    assert main(["eval", str(model), str(data), "--spec", str(spec), "--filter", "bird*"]) == 1
    assert "no pairs match" in capsys.readouterr().err
    assert main(["eval", str(model), str(tmp_path / "nowhere"), "--spec", str(spec)]) == 1
    assert main(["eval", str(model), str(data), "--spec", "no_such_spec"]) == 1
    err = capsys.readouterr().err
    assert "no shipped spec" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["eval", str(model), str(data), "--limit", "0"])


@pytest.mark.shared
def test_mediapipe_peer_on_vikram_portraits(shared_dir: Path, tmp_path: Path) -> None:
    """The peers README reports mean IoU ~0.88 for MediaPipe selfie on vikram_*; 20 of them land near it."""
    model = shared_dir / "peers" / "mediapipe_selfie.xml"
    if not model.is_file():
        pytest.skip("peer model absent")
    out = tmp_path / "mp.json"
    code = main(["eval", str(model), str(shared_dir / "data" / "portraits"), "--spec", "mediapipe_selfie",
                 "--filter", "vikram_*", "--limit", "20", "--json", str(out), "--no-progress"])
    assert code == 0
    summary = json.loads(out.read_text())["summary"]
    assert summary["images"] == 20
    assert 0.8 < summary["mean"]["iou"] < 0.97
    assert 0.45 < summary["mean"]["boundary_iou"] < summary["mean"]["iou"]


def test_eval_subset_flags_and_the_old_spelling(tmp_path: Path, capsys) -> None:
    data = make_pairs(tmp_path / "data", count=6)  # dog_0 cat_1 dog_2 cat_3 dog_4 cat_5
    model, spec = green_model(tmp_path)
    out = tmp_path / "e.json"
    assert main(["eval", str(model), str(data), "--spec", str(spec), "--json", str(out), "--no-sod",
                 "--include", "dog_*", "--include", "cat_1.png", "--exclude", "dog_2", "--limit", "2"]) == 0
    report = json.loads(out.read_text())
    assert [r["stem"] for r in report["records"]] == ["cat_1", "dog_0"]  # sorted by stem, then the first 2
    assert report["meta"]["subset"] == {"include": ["dog_*", "cat_1.png"], "exclude": ["dog_2"], "limit": 2}
    assert "2" in capsys.readouterr().out.splitlines()[-2]  # the table's images column
    assert main(["eval", str(model), str(data), "--spec", str(spec), "--json", str(out), "--no-sod",
                 "--filter", "cat_*"]) == 0
    assert [r["stem"] for r in json.loads(out.read_text())["records"]] == ["cat_1", "cat_3", "cat_5"]
    err = capsys.readouterr().err
    assert "--filter is deprecated; use --include GLOB" in err
    assert main(["eval", str(model), str(data), "--spec", str(spec), "--exclude", "*"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no pairs match --exclude '*' (of 6)" in err[0]
    with pytest.raises(SystemExit):
        main(["eval", str(model), str(data), "--help"])
    helptext = capsys.readouterr().out
    assert "--include GLOB" in helptext and "--filter" not in helptext and "--post-process" in helptext


def hazy_pairs(root: Path, count: int = 3) -> Path:
    """Pairs whose green channel is a hard ellipse over a 0.2 haze; the masks are the clean ellipses."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        image, alpha = make_scene(H, W, seed=i)
        mask = (alpha > 0.5).astype(np.float32)
        image[..., 1] = np.round(np.maximum(mask, 0.2) * 255).astype(np.uint8)
        cv2.imwrite(str(root / "images" / "p{}.png".format(i)), image)
        cv2.imwrite(str(root / "masks" / "p{}.png".format(i)), np.round(mask * 255).astype(np.uint8))
    return root


def test_eval_post_process_is_measurable(tmp_path: Path, capsys) -> None:
    data = hazy_pairs(tmp_path / "data")
    model, spec = green_model(tmp_path)
    maes = []
    for extra in ([], ["--post-process"]):
        out = tmp_path / "e{}.json".format(len(extra))
        assert main(["eval", str(model), str(data), "--spec", str(spec), "--no-sod", "--json", str(out)] + extra) == 0
        report = json.loads(out.read_text())
        assert report["meta"]["post_process"] is bool(extra)
        row = capsys.readouterr().out.splitlines()[2].split()
        maes.append(float(row[5]))  # model images soft IoU BIoU MAE
        assert maes[-1] == pytest.approx(report["summary"]["mean"]["mae"], abs=1e-4)
    assert maes[0] > 0.1 and maes[1] < 0.01
