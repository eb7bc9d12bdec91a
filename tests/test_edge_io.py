"""edge.io: every image oddity becomes upright BGR uint8, every bad file one InputError line, writes are atomic."""
import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgematte.edge import io
from edgematte.edge.errors import InputError


def _quadrants(h: int = 40, w: int = 60) -> np.ndarray:
    """An image whose four quadrants have distinct colours, so any flip or rotation shows."""
    image = np.zeros((h, w, 3), np.uint8)
    image[: h // 2, : w // 2] = (255, 0, 0)
    image[: h // 2, w // 2:] = (0, 255, 0)
    image[h // 2:, : w // 2] = (0, 0, 255)
    image[h // 2:, w // 2:] = (255, 255, 255)
    return image


def _exif_app1(orientation: int, order: str = "<") -> bytes:
    """A JPEG APP1 segment holding a TIFF header with one IFD0 entry: Orientation (0x0112, SHORT)."""
    mark = b"II" if order == "<" else b"MM"
    tiff = mark + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", 1)
    tiff += struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(order + "I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_with_orientation(orientation: int, order: str = "<") -> bytes:
    data = cv2.imencode(".jpg", _quadrants(), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    return data[:2] + _exif_app1(orientation, order) + data[2:]


def _assert_one_line(exc: BaseException, name: str) -> None:
    text = str(exc)
    assert "\n" not in text and name in text, text


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("order", ["<", ">"])
def test_exif_orientation_matches_opencv(tmp_path: Path, orientation: int, order: str) -> None:
    path = tmp_path / "o.jpg"
    path.write_bytes(_jpeg_with_orientation(orientation, order))
    assert io.exif_orientation(path.read_bytes()) == orientation
    oracle = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)  # applies EXIF itself
    got = io.read_image(path)
    assert got.shape == oracle.shape
    assert np.array_equal(got, oracle)
    if orientation in (5, 6, 7, 8):
        assert got.shape[:2] == (60, 40)


def test_png_exif_chunk_rotates(tmp_path: Path) -> None:
    data = cv2.imencode(".png", _quadrants())[1].tobytes()
    exif = _exif_app1(6)[10:]  # TIFF block without the APP1 header and "Exif\0\0"
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + b"\x00\x00\x00\x00"  # CRC is not checked by us
    ihdr_end = 8 + 25
    path = tmp_path / "o.png"
    path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])
    assert io.exif_orientation(path.read_bytes()) == 6
    got = io.read_image(path)
    assert np.array_equal(got, cv2.rotate(_quadrants(), cv2.ROTATE_90_CLOCKWISE))


def test_grayscale_16bit_rgba(tmp_path: Path) -> None:
    gray = (np.arange(40 * 60) % 256).astype(np.uint8).reshape(40, 60)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = io.read_image(tmp_path / "g.png")
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 0], gray) and np.array_equal(out[:, :, 2], gray)

    deep = np.full((10, 12, 3), 0, np.uint16)
    deep[..., 0], deep[..., 1], deep[..., 2] = 65535, 257 * 100, 300
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    out = io.read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and tuple(out[0, 0]) == (255, 100, 1)

    bgra = np.dstack([_quadrants(), np.full((40, 60), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    out = io.read_image(tmp_path / "a.png")
    assert np.array_equal(out, _quadrants())  # alpha dropped, colours kept as stored


def test_cmyk_jpeg_reads_as_bgr(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:] = (200, 30, 40)
    pil.fromarray(rgb).convert("CMYK").save(str(tmp_path / "c.jpg"), quality=95)
    out = io.read_image(tmp_path / "c.jpg")
    assert out.shape == (16, 16, 3)
    assert np.abs(out[8, 8].astype(int) - [40, 30, 200]).max() <= 6


@pytest.mark.parametrize("kind", ["empty", "garbage", "text", "truncated_jpeg", "unterminated_jpeg",
                                  "truncated_png", "missing", "folder"])
def test_bad_files_are_one_line_input_errors(tmp_path: Path, kind: str) -> None:
    good_jpg = cv2.imencode(".jpg", _quadrants(200, 300))[1].tobytes()
    good_png = cv2.imencode(".png", _quadrants(200, 300))[1].tobytes()
    path = tmp_path / "bad.jpg"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "text":
        path = tmp_path / "notes.png"
        path.write_text("this is not an image\n")
    elif kind == "truncated_jpeg":
        path.write_bytes(good_jpg[: len(good_jpg) // 2])
    elif kind == "unterminated_jpeg":  # end marker replaced by padding: older OpenCV decodes this silently
        path.write_bytes(good_jpg[:-2] + b"\x00" * 16)
    elif kind == "truncated_png":
        path = tmp_path / "bad.png"
        path.write_bytes(good_png[: len(good_png) // 2])
    elif kind == "missing":
        path = tmp_path / "nope.jpg"
    elif kind == "folder":
        path = tmp_path / "dir.jpg"
        path.mkdir()
    with pytest.raises(InputError) as info:
        io.read_image(path)
    _assert_one_line(info.value, path.name)


def test_huge_image_refused_from_header_without_decoding(tmp_path: Path, monkeypatch) -> None:
    cv2.imwrite(str(tmp_path / "big.jpg"), _quadrants(100, 200))
    cv2.imwrite(str(tmp_path / "big.png"), _quadrants(100, 200))
    for name in ("big.jpg", "big.png"):
        assert io.image_size((tmp_path / name).read_bytes()) == (100, 200)

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded a too-large image")

    monkeypatch.setattr(io.cv2, "imdecode", no_decode)
    with pytest.raises(InputError) as info:
        io.read_image(tmp_path / "big.jpg", max_pixels=5000)
    _assert_one_line(info.value, "big.jpg")
    assert "megapixels" in str(info.value)


@pytest.mark.parametrize("name", ["big.jpg", "big.png", "big.bmp"])
def test_huge_image_downscaled_on_request(tmp_path: Path, name: str) -> None:
    cv2.imwrite(str(tmp_path / name), _quadrants(100, 200))
    out = io.read_image(tmp_path / name, max_pixels=5000, downscale=True)
    assert out.dtype == np.uint8 and out.shape[2] == 3
    assert out.shape[0] * out.shape[1] <= 5000
    assert abs(out.shape[1] / out.shape[0] - 2.0) < 0.1
    assert out.shape[0] * out.shape[1] > 2500  # not shrunk more than needed
    assert io.read_image(tmp_path / name, max_pixels=None).shape == (100, 200, 3)


def test_read_mask_depths_and_alpha(tmp_path: Path) -> None:
    m8 = np.tile(np.arange(0, 256, 5, dtype=np.uint8), (4, 1))
    cv2.imwrite(str(tmp_path / "m8.png"), m8)
    got = io.read_mask(tmp_path / "m8.png")
    assert got.dtype == np.float32 and got.shape == m8.shape
    assert np.allclose(got, m8 / 255.0)
    cv2.imwrite(str(tmp_path / "m16.png"), (m8.astype(np.uint16) * 257))
    assert np.allclose(io.read_mask(tmp_path / "m16.png"), m8 / 255.0)
    rgba = np.dstack([np.full(m8.shape + (3,), 99, np.uint8), m8])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert np.allclose(io.read_mask(tmp_path / "rgba.png"), m8 / 255.0)  # the alpha channel holds the mask
    opaque = np.dstack([np.dstack([m8] * 3), np.full(m8.shape, 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "opaque.png"), opaque)
    assert np.allclose(io.read_mask(tmp_path / "opaque.png"), m8 / 255.0)  # all-opaque alpha: first channel


def test_write_image_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.png"
    io.write_image(target, _quadrants())
    assert np.array_equal(io.read_image(target), _quadrants())
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not the private mode of mkstemp
    with pytest.raises(InputError):
        io.write_image(tmp_path / "x.unknownsuffix", _quadrants())
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sub", "x.png"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.json"]
    with io.atomic_path(target) as tmp:
        assert Path(tmp).parent == tmp_path and tmp.endswith(".json")
        Path(tmp).write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["r.json"]


def _write_video(path: Path, frames: int = 8, size=(64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 20 * i, np.uint8)
        writer.write(frame)
    writer.release()


def test_video_probe_read_write(tmp_path: Path) -> None:
    src = tmp_path / "v.mp4"
    _write_video(src)
    info = io.probe_video(src)
    assert (info.width, info.height, info.frame_count) == (64, 48, 8) and abs(info.fps - 10.0) < 0.01
    reader = io.iter_video_frames(src)
    frames = list(reader)
    assert len(frames) == 8 and frames[0].shape == (48, 64, 3) and reader.broken == 0
    out = tmp_path / "out.avi"
    with io.VideoWriter(out, info.fps, (64, 48)) as writer:
        for frame in frames:
            writer.write(frame[:, :, 0])  # single channel is written as gray
    assert io.probe_video(out).frame_count == 8
    assert set(os.listdir(tmp_path)) == {"v.mp4", "out.avi"}  # no temp file left behind


def test_video_writer_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with io.VideoWriter(tmp_path / "o.mp4", 10.0, (32, 32)) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with pytest.raises(InputError):
        with io.VideoWriter(tmp_path / "o.mp4", 10.0, (32, 32)):
            pass  # no frame: no file
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_bad_video_is_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        list(io.iter_video_frames(path))
    _assert_one_line(info.value, "bad.mp4")


def test_16bit_gray_gray_alpha_and_16bit_rgba(tmp_path: Path) -> None:
    gray16 = (np.arange(8 * 10, dtype=np.uint16).reshape(8, 10) * 800)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    out = io.read_image(tmp_path / "g16.png")
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 1], ((gray16.astype(np.uint32) + 128) // 257).astype(np.uint8))

    pil = pytest.importorskip("PIL.Image")
    la = np.dstack([np.full((8, 10), 77, np.uint8), np.full((8, 10), 3, np.uint8)])
    pil.fromarray(la, mode="LA").save(str(tmp_path / "la.png"))
    out = io.read_image(tmp_path / "la.png")
    assert out.shape == (8, 10, 3) and (out == 77).all()  # gray + alpha: the gray level, alpha dropped

    rgba16 = np.zeros((8, 10, 4), np.uint16)
    rgba16[..., 0], rgba16[..., 1], rgba16[..., 2], rgba16[..., 3] = 257 * 10, 257 * 20, 257 * 30, 1000
    cv2.imwrite(str(tmp_path / "a16.png"), rgba16)
    out = io.read_image(tmp_path / "a16.png")
    assert out.shape == (8, 10, 3) and tuple(out[0, 0]) == (10, 20, 30)


def test_float_tiff_is_scaled_to_8bit(tmp_path: Path) -> None:
    image = np.zeros((6, 7, 3), np.float32)
    image[..., 0], image[..., 1], image[..., 2] = 0.0, 0.5, 2.0  # above 1.0 clips
    assert cv2.imwrite(str(tmp_path / "f.tif"), image)
    out = io.read_image(tmp_path / "f.tif")
    assert out.dtype == np.uint8 and tuple(out[0, 0]) == (0, 128, 255)


def test_huge_png_and_tiff_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    cv2.imwrite(str(tmp_path / "big.png"), _quadrants(100, 200))
    cv2.imwrite(str(tmp_path / "big.tif"), _quadrants(100, 200))
    assert io.image_size((tmp_path / "big.tif").read_bytes()) == (100, 200)  # TIFF headers are read too
    with pytest.raises(InputError) as info:
        io.read_image(tmp_path / "big.tif", max_pixels=5000)
    _assert_one_line(info.value, "big.tif")
    shrunk = io.read_image(tmp_path / "big.tif", max_pixels=5000, downscale=True)
    assert shrunk.shape[0] * shrunk.shape[1] <= 5000

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded a too-large image")

    monkeypatch.setattr(io.cv2, "imdecode", no_decode)
    for name in ("big.png", "big.tif"):
        with pytest.raises(InputError) as info:
            io.read_image(tmp_path / name, max_pixels=5000)
        _assert_one_line(info.value, name)


def test_exif_rotation_applies_to_masks_too(tmp_path: Path) -> None:
    path = tmp_path / "m.jpg"
    path.write_bytes(_jpeg_with_orientation(6))
    mask = io.read_mask(path)
    assert mask.shape == (60, 40) and mask.dtype == np.float32


def test_broken_frames_are_skipped_and_counted(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "v.mp4"
    _write_video(src, frames=5)
    real = cv2.VideoCapture

    class Flaky:
        """A capture whose 3rd read fails once, as a damaged frame does."""

        def __init__(self, *args):
            self.inner = real(*args)
            self.reads = 0

        def read(self):
            self.reads += 1
            if self.reads == 3:
                self.inner.grab()
                return False, None
            return self.inner.read()

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(io.cv2, "VideoCapture", Flaky)
    skipped = []
    reader = io.iter_video_frames(src, on_broken=skipped.append)
    frames = list(reader)
    assert len(frames) == 4 and reader.broken == 1 and reader.frames == 4 and reader.missing == 0
    assert skipped == [2]  # 0-based position in the stream
