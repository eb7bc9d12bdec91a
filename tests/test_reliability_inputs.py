"""Every bad-input class through the CLI: a non-zero exit, exactly one stderr line that names the bad file, no
traceback, nothing written at the output. Plus the inputs that are handled rather than refused: EXIF-rotated and
CMYK photos come out upright and in colour, and the masks `edgematte mask` writes match the displayed orientation.
"""
import json
import shutil
import struct
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np
import pytest

from edge_tiny import build_ir, build_onnx
from edgematte.edge._ov import Core, ov
from edgematte.edge.cli import main
from edgematte.edge.io import read_image

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Dict[str, Path]:
    """Good material the cases damage: an image, a tiny IR (+ a trimap IR of another size), a tiny ONNX, a video."""
    root = tmp_path_factory.mktemp("assets")
    image = root / "photo.png"
    cv2.imwrite(str(image), np.full((20, 30, 3), 120, np.uint8))
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
    for i in range(6):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    onnx_dir = root / "onnx"
    onnx_dir.mkdir()
    return {"image": image, "video": video, "ir": build_ir(root / "ir", size=(16, 16)),
            "other_ir": build_ir(root / "other", size=(24, 8), task="trimap"), "onnx": build_onnx(onnx_dir)}


def _copy_ir(assets: Dict[str, Path], folder: Path) -> Path:
    shutil.copytree(str(assets["ir"].parent), str(folder))
    return folder / assets["ir"].name


def _ir_with_card_text(assets: Dict[str, Path], folder: Path, text: str) -> Path:
    """The tiny IR re-saved with `text` as its rt_info card."""
    model = Core().read_model(str(assets["ir"]))
    model.set_rt_info(text, ["edgematte", "card"])
    folder.mkdir()
    xml = folder / "card.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def _checkpoint(folder: Path, arch: str = "mbv2_unet_sod") -> Path:
    """A small real kit checkpoint."""
    torch = pytest.importorskip("torch")
    from edgematte.train.checkpoint import save_checkpoint
    from edgematte.train.models import create_model

    torch.manual_seed(0)
    path = folder / (arch + ".pt")
    save_checkpoint(str(path), create_model(arch, width=0.35, input_size=[32, 32]))
    return path


def _edited_checkpoint(folder: Path, name: str, edit: Callable[[dict], None]) -> Path:
    torch = pytest.importorskip("torch")
    ckpt = torch.load(str(_checkpoint(folder)), weights_only=True)
    edit(ckpt)
    path = folder / name
    torch.save(ckpt, str(path))
    return path


def _mask(assets: Dict[str, Path], model: Path) -> List[str]:
    return ["mask", str(assets["image"]), "-m", str(model)]


# Each case: (tmp folder, assets) -> (argv without -o, text the one error line must contain: the bad file).
Case = Callable[[Path, Dict[str, Path]], Tuple[List[str], str]]


def ir_bin_swapped(tmp: Path, assets) -> Tuple[List[str], str]:
    xml = _copy_ir(assets, tmp / "swap")
    shutil.copyfile(str(assets["other_ir"].with_suffix(".bin")), str(xml.with_suffix(".bin")))
    return _mask(assets, xml), "tiny.bin"


def ir_bin_truncated(tmp: Path, assets) -> Tuple[List[str], str]:
    xml = _copy_ir(assets, tmp / "cut")
    data = xml.with_suffix(".bin").read_bytes()
    xml.with_suffix(".bin").write_bytes(data[: len(data) // 2])
    return _mask(assets, xml), "tiny.bin"


def ir_bin_missing(tmp: Path, assets) -> Tuple[List[str], str]:
    xml = _copy_ir(assets, tmp / "nobin")
    xml.with_suffix(".bin").unlink()
    return _mask(assets, xml), "tiny.bin"


def ir_xml_truncated(tmp: Path, assets) -> Tuple[List[str], str]:
    xml = _copy_ir(assets, tmp / "cutxml")
    text = xml.read_bytes()
    xml.write_bytes(text[: len(text) // 2])
    return _mask(assets, xml), str(xml)


def ir_card_not_json(tmp: Path, assets) -> Tuple[List[str], str]:
    xml = _ir_with_card_text(assets, tmp / "cardjson", "{not json")
    return _mask(assets, xml), str(xml)


def ir_card_bad_fields(tmp: Path, assets) -> Tuple[List[str], str]:
    xml = _ir_with_card_text(assets, tmp / "cardfields", json.dumps({"name": "x", "task": "banana",
                                                                      "input_size": "big"}))
    return _mask(assets, xml), str(xml)


def onnx_truncated(tmp: Path, assets) -> Tuple[List[str], str]:
    data = assets["onnx"].read_bytes()
    path = tmp / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    return _mask(assets, path), str(path)


def onnx_empty(tmp: Path, assets) -> Tuple[List[str], str]:
    path = tmp / "empty.onnx"
    path.write_bytes(b"")
    return _mask(assets, path), str(path)


def ckpt_of_another_model(tmp: Path, assets) -> Tuple[List[str], str]:
    """A mbv2_unet (trimap) checkpoint whose weights are those of mbv2_unet_sod (1-channel head)."""
    torch = pytest.importorskip("torch")
    sod = torch.load(str(_checkpoint(tmp)), weights_only=True)
    trimap = torch.load(str(_checkpoint(tmp, "mbv2_unet")), weights_only=True)
    trimap["state_dict"] = sod["state_dict"]
    path = tmp / "other_model.pt"
    torch.save(trimap, str(path))
    return ["export", str(path)], str(path)


def ckpt_truncated(tmp: Path, assets) -> Tuple[List[str], str]:
    data = _checkpoint(tmp).read_bytes()
    path = tmp / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    return _mask(assets, path), str(path)


def ckpt_pickled_code(tmp: Path, assets) -> Tuple[List[str], str]:
    """A torch.save'd module (pickled classes): refused, never unpickled."""
    torch = pytest.importorskip("torch")
    path = tmp / "module.pt"
    torch.save(torch.nn.Conv2d(3, 1, 1), str(path))
    return _mask(assets, path), str(path)


def ckpt_card_malformed(tmp: Path, assets) -> Tuple[List[str], str]:
    path = _edited_checkpoint(tmp, "card.pt", lambda c: c.__setitem__("card", {"task": 5}))
    return _mask(assets, path), str(path)


def _channels(value):
    return lambda c: c["config"].__setitem__("channels", value)


def prune_channels_not_a_map(tmp: Path, assets) -> Tuple[List[str], str]:
    path = _edited_checkpoint(tmp, "chan.pt", _channels(["x"]))
    return ["export", str(path)], str(path)


def prune_channels_strings(tmp: Path, assets) -> Tuple[List[str], str]:
    path = _edited_checkpoint(tmp, "chan.pt", _channels({"encoder.model.features.0.0": "abc"}))
    return _mask(assets, path), str(path)


def prune_channels_unknown_layer(tmp: Path, assets) -> Tuple[List[str], str]:
    path = _edited_checkpoint(tmp, "chan.pt", _channels({"no.such.layer": [3, 16, 1]}))
    return ["export", str(path)], str(path)


def prune_channels_not_a_conv(tmp: Path, assets) -> Tuple[List[str], str]:
    path = _edited_checkpoint(tmp, "chan.pt", _channels({"encoder.model.features.0.0": [3, 16, 7]}))
    return _mask(assets, path), str(path)


def prune_channels_vs_weights(tmp: Path, assets) -> Tuple[List[str], str]:
    path = _edited_checkpoint(tmp, "chan.pt", _channels({"encoder.model.features.0.0": [3, 24, 1]}))
    return _mask(assets, path), str(path)


def calib_empty_folder(tmp: Path, assets) -> Tuple[List[str], str]:
    calib = tmp / "calib"
    calib.mkdir()
    (calib / "README.txt").write_text("no images here")
    return ["quantize", str(assets["ir"]), "--calib", str(calib)], str(calib)


def video_unopenable(tmp: Path, assets) -> Tuple[List[str], str]:
    path = tmp / "junk.avi"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return ["mask", str(path), "-m", str(assets["ir"])], str(path)


def video_header_only(tmp: Path, assets) -> Tuple[List[str], str]:
    path = tmp / "cut.avi"
    path.write_bytes(assets["video"].read_bytes()[:300])
    return ["mask", str(path), "-m", str(assets["ir"])], str(path)


def video_empty(tmp: Path, assets) -> Tuple[List[str], str]:
    path = tmp / "empty.avi"
    path.write_bytes(b"")
    return ["mask", str(path), "-m", str(assets["ir"])], str(path)


def image_truncated_cmyk(tmp: Path, assets) -> Tuple[List[str], str]:
    data = (FIXTURES / "cmyk.jpg").read_bytes()
    path = tmp / "cmyk.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    return ["mask", str(path), "-m", str(assets["ir"])], str(path)


def image_bomb_header(tmp: Path, assets) -> Tuple[List[str], str]:
    """A PNG whose header claims 60000 x 60000 pixels: refused from the header, never decoded."""
    data = bytearray(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", 60000, 60000)
    path = tmp / "bomb.png"
    path.write_bytes(bytes(data))
    return ["mask", str(path), "-m", str(assets["ir"])], str(path)


CASES = [ir_bin_swapped, ir_bin_truncated, ir_bin_missing, ir_xml_truncated, ir_card_not_json, ir_card_bad_fields,
         onnx_truncated, onnx_empty, ckpt_of_another_model, ckpt_truncated, ckpt_pickled_code, ckpt_card_malformed,
         prune_channels_not_a_map, prune_channels_strings,
         prune_channels_unknown_layer, prune_channels_not_a_conv, prune_channels_vs_weights, calib_empty_folder,
         video_unopenable, video_header_only, video_empty, image_truncated_cmyk, image_bomb_header]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_bad_input_class_is_one_line_naming_the_file(case: Case, assets, tmp_path: Path, capfd) -> None:
    argv, named = case(tmp_path, assets)
    out = tmp_path / "out"
    capfd.readouterr()
    code = main(argv + ["-o", str(out), "--no-progress"] if argv[0] == "mask" else argv + ["-o", str(out)])
    err = capfd.readouterr().err  # file-descriptor level: OpenVINO/FFmpeg/libjpeg messages would show here too
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, (code, err)  # 1 = a user error; 2 would be an internal error
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("edgematte: error: ") and named in lines[0], err
    written = [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else []
    assert not [p for p in written if not p.name.startswith(".")], written  # no product, complete or partial


# -- handled, not refused: EXIF orientation and CMYK ----------------------------------------------------------
def _exif_app1(orientation: int) -> bytes:
    """APP1 with a little-endian TIFF header and one IFD0 entry: Orientation (0x0112, SHORT)."""
    tiff = b"II" + struct.pack("<HI", 42, 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _scene() -> np.ndarray:
    """40x60, left half dark and right half bright (the tiny IR's mask follows brightness), a bright top band."""
    image = np.full((40, 60, 3), 30, np.uint8)
    image[:, 30:] = 230
    image[:8, :] = 230
    return image


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_mask_of_exif_rotated_jpeg_is_upright(orientation: int, assets, tmp_path: Path, capfd) -> None:
    stored = {3: cv2.rotate(_scene(), cv2.ROTATE_180), 6: cv2.rotate(_scene(), cv2.ROTATE_90_COUNTERCLOCKWISE),
              8: cv2.rotate(_scene(), cv2.ROTATE_90_CLOCKWISE)}[orientation]  # what a camera stores
    jpeg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    src = tmp_path / "photo.jpg"
    src.write_bytes(jpeg[:2] + _exif_app1(orientation) + jpeg[2:])
    upright = read_image(src)
    assert upright.shape == (40, 60, 3)
    assert np.abs(upright.astype(int) - _scene()).max() <= 12  # JPEG error only: the viewer's picture
    assert main(["mask", str(src), "-o", str(tmp_path / "out"), "-m", str(assets["ir"]), "--no-progress"]) == 0
    assert capfd.readouterr().err.strip() == ""
    mask = cv2.imread(str(tmp_path / "out" / "photo.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 60)  # displayed orientation, not the stored 60x40
    assert mask[30, 10] < 64 and mask[30, 50] > 192 and mask[2, 10] > 192  # dark left, bright right, bright top


def test_cmyk_jpeg_converted_and_masked(assets, tmp_path: Path, capfd) -> None:
    """The committed CMYK JPEG (tests/fixtures/make_cmyk.py) reads as BGR with its colours; with EXIF 6 it is
    also turned upright, and `edgematte mask` takes it like any photo."""
    cmyk = (FIXTURES / "cmyk.jpg").read_bytes()
    image = read_image(FIXTURES / "cmyk.jpg")
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    expected_bgr = {(5, 5): (40, 30, 200), (5, 25): (250, 250, 250), (20, 5): (200, 40, 30), (20, 25): (90, 200, 20)}
    for (y, x), bgr in expected_bgr.items():
        assert np.abs(image[y, x].astype(int) - bgr).max() <= 8, (y, x, image[y, x])
    src = tmp_path / "cmyk_rotated.jpg"
    src.write_bytes(cmyk[:2] + _exif_app1(6) + cmyk[2:])
    rotated = read_image(src)
    assert np.array_equal(rotated, cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE))
    assert main(["mask", str(src), "-o", str(tmp_path / "out"), "-m", str(assets["ir"]), "--no-progress"]) == 0
    assert capfd.readouterr().err.strip() == ""
    assert cv2.imread(str(tmp_path / "out" / "cmyk_rotated.png"), cv2.IMREAD_UNCHANGED).shape == (32, 24)
