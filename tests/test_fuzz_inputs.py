"""Fuzz: generated bad images and model files through the loaders and the CLI: a one-line error naming the file,
a non-zero exit, no traceback, no half-written output, or (for inputs that are in fact fine) a correct result.

Four properties, 1,250 generated inputs in all (hypothesis, derandomized so CI runs the same cases every time).
Image kinds include EXIF-rotated JPEGs (orientations 1-8, both byte orders, and damaged EXIF blocks) and CMYK JPEGs
(tests/fixtures/cmyk.jpg, made once by tests/fixtures/make_cmyk.py), alone, rotated, cut or with flipped bytes.
"""
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_tiny import build_ir
from edgematte.edge.cli import main
from edgematte.edge.errors import EdgematteError
from edgematte.edge.io import read_image, read_mask
from edgematte.edge.runtime import load_model

def fuzz(examples: int) -> settings:
    """Derandomized (CI runs the same cases every time), no deadline, no example database on disk."""
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _png(h: int, w: int, channels: int, depth: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if depth == 16 else np.uint8
    shape = (h, w) if channels == 1 else (h, w, channels)
    ok, buf = cv2.imencode(".png", rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype))
    return buf.tobytes()


def _jpeg(h: int, w: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8))
    return buf.tobytes()


CMYK_JPEG = (Path(__file__).parent / "fixtures" / "cmyk.jpg").read_bytes()


def _exif_app1(orientation: int, order: str = "<", junk: bytes = b"") -> bytes:
    """A JPEG APP1 segment: TIFF header, IFD0 with one Orientation entry (0x0112, SHORT); `junk` overwrites the
    TIFF block from byte 4 on (a damaged EXIF)."""
    mark = b"II" if order == "<" else b"MM"
    tiff = mark + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", 1)
    tiff += struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(order + "I", 0)
    if junk:
        tiff = tiff[:4] + junk + tiff[4 + len(junk):]
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _with_exif(jpeg: bytes, app1: bytes) -> bytes:
    """The JPEG with an APP1 segment right after its SOI marker."""
    return jpeg[:2] + app1 + jpeg[2:]


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, followed by a tiny (wrong) IDAT: a decompression-bomb shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@st.composite
def image_bytes(draw):
    """Valid images of odd kinds (gray, 16-bit, RGBA, 1-pixel, EXIF-rotated, CMYK) and broken ones (cut, flipped
    bytes, junk, bombs, damaged EXIF)."""
    kind = draw(st.sampled_from(["png", "jpeg", "exif", "cmyk", "cut", "flip", "junk", "empty", "bomb", "prefix",
                                 "bad_exif"]))
    seed = draw(st.integers(0, 10_000))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    if kind == "png":
        return kind, _png(h, w, draw(st.sampled_from([1, 3, 4])), draw(st.sampled_from([8, 16])), seed)
    if kind == "jpeg":
        return kind, _jpeg(h, w, seed)
    if kind == "exif":
        return kind, _with_exif(_jpeg(h, w, seed), _exif_app1(draw(st.integers(1, 8)), draw(st.sampled_from("<>"))))
    if kind == "cmyk":
        orientation = draw(st.integers(0, 8))  # 0: no EXIF at all
        return kind, _with_exif(CMYK_JPEG, _exif_app1(orientation)) if orientation else CMYK_JPEG
    if kind == "bad_exif":
        junk = draw(st.binary(min_size=1, max_size=24))
        return kind, _with_exif(_jpeg(h, w, seed), _exif_app1(draw(st.integers(0, 12)), draw(st.sampled_from("<>")),
                                                                junk))
    base = draw(st.sampled_from([
        lambda: _png(h, w, 3, 8, seed), lambda: _jpeg(h, w, seed), lambda: CMYK_JPEG,
        lambda: _with_exif(_jpeg(h, w, seed), _exif_app1(6))]))()
    if kind == "cut":
        return kind, base[: draw(st.integers(1, max(1, len(base) - 1)))]
    if kind == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        return kind, bytes(data)
    if kind == "junk":
        return kind, draw(st.binary(min_size=1, max_size=300))
    if kind == "empty":
        return kind, b""
    if kind == "bomb":
        return kind, _png_header(draw(st.integers(9000, 60000)), draw(st.integers(9000, 60000)))
    return kind, base[:8] + draw(st.binary(min_size=0, max_size=64))  # a real signature, then junk


def _displayed(data: bytes) -> np.ndarray:
    """What a viewer shows: OpenCV's IMREAD_COLOR applies EXIF orientation and converts CMYK to BGR."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _check_one_line(error: BaseException, path: Path) -> None:
    text = str(error)
    assert isinstance(error, EdgematteError), repr(error)
    assert "\n" not in text and str(path) in text, text


@fuzz(500)
@given(case=image_bytes())
def test_image_loaders_never_crash(tmp_path_factory, case):
    kind, data = case
    path = tmp_path_factory.mktemp("img") / "input.png"
    path.write_bytes(data)
    for reader in (read_image, read_mask):
        try:
            out = reader(path, max_pixels=50_000_000)
        except EdgematteError as error:
            _check_one_line(error, path)
            continue
        assert out.size > 0 and out.ndim in (2, 3)
        if reader is read_image:
            assert out.dtype == np.uint8 and out.shape[2] == 3
        else:
            assert out.dtype == np.float32 and 0.0 <= out.min() <= out.max() <= 1.0
    if kind in ("png", "jpeg"):
        assert read_image(path).shape[:2] == cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2]
    if kind in ("exif", "cmyk"):  # upright, colours converted: exactly what OpenCV's viewer path decodes
        assert np.array_equal(read_image(path), _displayed(data))
        assert read_mask(path).shape == _displayed(data).shape[:2]
    if kind == "bad_exif":  # a damaged EXIF never fails the image; it is upright or as stored
        stored = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2]
        assert read_image(path).shape[:2] in (stored, stored[::-1])


@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory):
    return build_ir(tmp_path_factory.mktemp("ir"), size=(16, 16))


@fuzz(250)
@given(case=image_bytes())
def test_cli_mask_on_bad_images(tmp_path_factory, capsys, tiny_ir, case):
    kind, data = case
    folder = tmp_path_factory.mktemp("cli")
    src, out = folder / "photo.png", folder / "out"
    src.write_bytes(data)
    code = main(["mask", str(src), "-o", str(out), "-m", str(tiny_ir), "--no-progress"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    written = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if code == 0:
        assert written == ["photo.png"]
        mask = cv2.imread(str(out / "photo.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == read_image(src).shape[:2]
        if kind in ("exif", "cmyk"):  # the mask is in the displayed orientation
            assert mask.shape == _displayed(data).shape[:2]
    else:
        assert code == 1 and written == []  # nothing half-written
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "photo.png" in lines[0], captured.err


@st.composite
def model_files(draw):
    """An IR pair with a cut, flipped, swapped or junk .xml/.bin, or a junk/cut .onnx."""
    kind = draw(st.sampled_from(["cut_xml", "cut_bin", "flip_bin", "junk_xml", "swap_bin", "no_bin", "junk_onnx",
                                 "empty_xml"]))
    return kind, draw(st.integers(0, 10_000)), draw(st.floats(0.0, 1.0))


@fuzz(300)
@given(case=model_files())
def test_model_loaders_never_crash(tmp_path_factory, case):
    kind, seed, where = case
    rng = np.random.default_rng(seed)
    folder = tmp_path_factory.mktemp("model")
    xml = build_ir(folder, name="m", size=(16, 16))
    other = build_ir(folder / "other", name="m", size=(24, 8), task="trimap")
    bin_path = xml.with_suffix(".bin")
    target = xml
    if kind == "cut_xml":
        text = xml.read_bytes().rstrip()  # a cut that only drops the final newline leaves a valid IR
        xml.write_bytes(text[: int(where * (len(text) - 1))])
    elif kind == "cut_bin":
        data = bin_path.read_bytes()
        bin_path.write_bytes(data[: int(where * (len(data) - 1))])
    elif kind == "flip_bin":
        data = bytearray(bin_path.read_bytes())
        data[int(where * (len(data) - 1))] ^= 0x5A
        bin_path.write_bytes(bytes(data))
    elif kind == "junk_xml":
        xml.write_bytes(rng.integers(0, 256, size=int(1 + where * 400), dtype=np.uint8).tobytes())
    elif kind == "swap_bin":
        bin_path.write_bytes(other.with_suffix(".bin").read_bytes())
    elif kind == "no_bin":
        bin_path.unlink()
    elif kind == "empty_xml":
        xml.write_bytes(b"")
    else:
        target = folder / "m.onnx"
        target.write_bytes(rng.integers(0, 256, size=int(1 + where * 400), dtype=np.uint8).tobytes())
    with pytest.raises(EdgematteError) as info:
        load_model(str(target))
    _check_one_line(info.value, target)


@fuzz(200)
@given(device=st.one_of(st.sampled_from(["", "CUDA", "MYRIAD", "GPU.7", "HETERO:FOO,CPU", "cpu ", "NPU.9"]),
                        st.text(min_size=1, max_size=12)))
def test_unknown_devices_are_named(tiny_ir, device):
    try:
        predictor = load_model(str(tiny_ir), device=device)
    except EdgematteError as error:
        message = str(error)
        assert "\n" not in message and "device" in message, message
        name = device.strip()
        if name and ":" not in name and "," not in name:  # a plain name is quoted back (escaped if unprintable)
            assert (name if name.isprintable() else repr(name)[1:-1]) in message, message
        return
    image = np.zeros((8, 8, 3), np.uint8)
    assert predictor.predict(image).shape == (8, 8)  # a device name OpenVINO accepted (e.g. "cpu " -> CPU)


# -- headers of the other formats, video frame sizes, numeric options ---------------------------------
import math  # noqa: E402

import bombs  # noqa: E402
from edgematte.edge import options  # noqa: E402
from edgematte.edge.cli import build_parser  # noqa: E402
from edgematte.edge.io import VideoReader, image_size  # noqa: E402

HEADER_LIMIT = 1_000_000  # small, so that a claim under it that does decode stays cheap


@st.composite
def header_bytes(draw):
    """TIFF (both byte orders, BigTIFF), HDR, PNM/PAM/PFM, Sun raster, EXR, JPEG 2000 and AVIF headers claiming any
    size up to 70000x70000, whole, cut short or with flipped bytes."""
    kind = draw(st.sampled_from(sorted(bombs.BOMBS)))
    width, height = draw(st.integers(1, 70000)), draw(st.integers(1, 70000))
    data = bombs.BOMBS[kind](width, height)
    damage = draw(st.sampled_from(["whole", "cut", "flip"]))
    if damage == "cut":
        data = data[: draw(st.integers(1, len(data) - 1))]
    elif damage == "flip":
        data = bytearray(data)
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        data = bytes(data)
    return kind, damage, width, height, data


@fuzz(300)
@given(case=header_bytes())
def test_other_format_headers_are_bounded(tmp_path_factory, case):
    kind, damage, width, height, data = case
    path = tmp_path_factory.mktemp("hdr") / "input.img"
    path.write_bytes(data)
    for reader in (read_image, read_mask):
        try:
            out = reader(path, max_pixels=HEADER_LIMIT)
        except EdgematteError as error:
            _check_one_line(error, path)
            if damage == "whole" and width * height > HEADER_LIMIT:  # refused from the header, naming the size
                assert "{}x{}".format(width, height) in str(error), str(error)
            continue
        assert out.shape[0] * out.shape[1] <= HEADER_LIMIT
    if damage == "whole":
        assert image_size(data) == (height, width)


def _clip(path: Path, width: int, height: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (width, height))
    for value in (0, 128):
        writer.write(np.full((height, width, 3), value, np.uint8))
    writer.release()
    return path


@fuzz(15)
@given(width=st.integers(4, 48).map(lambda v: 2 * v), height=st.integers(4, 48).map(lambda v: 2 * v),
       limit=st.integers(16, 9000))
def test_video_frame_sizes_are_bounded(tmp_path_factory, width, height, limit):
    clip = _clip(tmp_path_factory.mktemp("video") / "clip.avi", width, height)
    try:
        frames = list(VideoReader(clip, max_pixels=limit))
    except EdgematteError as error:
        _check_one_line(error, clip)
        assert width * height > limit and "{}x{}".format(width, height) in str(error)
        return
    assert width * height <= limit and all(f.shape[:2] == (height, width) for f in frames)


NUMERIC = [  # (argv before the option, option, range)
    (["mask", "x.png", "-o", "out"], "--max-pixels", options.MAX_PIXELS_RANGE),
    (["mask", "x.png", "-o", "out"], "--nireq", options.NIREQ_RANGE),
    (["blur", "x.png", "-o", "out"], "--strength", options.STRENGTH_RANGE),
    (["blur", "x.png", "-o", "out"], "--reconnect", options.RECONNECT_RANGE),
    (["bench", "m.xml"], "--niter", options.NITER_RANGE),
    (["bench", "m.xml"], "--time", options.TIME_RANGE),
    (["bench", "m.xml"], "--threads", options.THREADS_RANGE),
    (["bench", "m.xml"], "--percentile", options.PERCENTILE_RANGE),
    (["eval", "m.xml", "data"], "--limit", options.COUNT_RANGE),
    (["clip", "x.png", "m.png", "-o", "out"], "--fps", options.FPS_RANGE),
]


@fuzz(400)
@given(which=st.integers(0, len(NUMERIC) - 1),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                       st.integers(-10 ** 12, 10 ** 12).map(str),
                       st.sampled_from(["nan", "-nan", "inf", "-inf", "1e9", "1e308", "-0", "0x10", "", " 5 ", "1_0"]),
                       st.text(max_size=8)))
def test_numeric_options_are_in_range_or_one_line(capsys, which, value):
    argv, option, (low, high) = NUMERIC[which]
    parser = build_parser()
    try:
        args = parser.parse_args(argv + [option + "=" + value])
    except SystemExit as exit_:
        err = capsys.readouterr().err
        assert exit_.code == 2 and len(err.strip().splitlines()) == 1 and option in err, err
        return
    parsed = getattr(args, option.lstrip("-").replace("-", "_"))
    assert isinstance(parsed, (int, float)) and math.isfinite(parsed) and low <= parsed <= high, (value, parsed)
