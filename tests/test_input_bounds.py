"""Memory and time bounds on inputs and options: sizes read from every header before decoding, file sizes bounded,
video frames bounded, thin backgrounds, special files, numeric option ranges, eval's E-measure, stems and suffixes."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import bombs
from edge_tiny import build_ir
from edgematte.edge import datasets, io, options
from edgematte.edge.cli import main
from edgematte.edge.errors import EdgematteError, InputError

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_ir(tmp_path_factory.mktemp("model"), size=(16, 16))


def _one_line(err: str, *needles: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


# -- sizes from headers ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".tif", ".hdr", ".ppm", ".pgm", ".pbm", ".pfm", ".pam", ".sr", ".jp2", ".avif",
                                    ".webp", ".bmp", ".gif", ".png", ".jpg"])
def test_size_is_read_from_the_header_of_every_format(suffix: str) -> None:
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    if suffix in (".hdr", ".pfm"):
        image = image.astype(np.float32) / 255
    if suffix in (".pgm", ".pbm"):
        image = image[:, :, 0]
    ok, buffer = cv2.imencode(suffix, image)
    assert ok
    assert io.image_size(buffer.tobytes()) == (37, 53)


@pytest.mark.parametrize("kind", sorted(bombs.BOMBS))
def test_headers_claiming_huge_images_are_refused_before_decoding(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("claim." + kind)
    path.write_bytes(bombs.BOMBS[kind](20000, 30000))
    assert io.image_size(path.read_bytes()) == (30000, 20000)
    for reader in (io.read_image, io.read_mask, io.read_stored):
        with pytest.raises(InputError) as info:
            reader(path)
        assert "20000x30000" in str(info.value) and str(path) in str(info.value)


def test_big_endian_and_bigtiff_headers() -> None:
    assert io.image_size(bombs.tiff(640, 480, ">")) == (480, 640)
    assert io.image_size(bombs.tiff(640, 480, "<", big=True)) == (480, 640)
    assert io.image_size(bombs.tiff(640, 480, ">", big=True)) == (480, 640)
    decoded = cv2.imdecode(np.frombuffer(bombs.deflate_tiff(30, 20, ">"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (20, 30, 3)  # the generator makes real files, so OpenCV agrees with the header


@pytest.mark.parametrize("kind", sorted(bombs.BOMBS))
def test_cut_headers_are_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cut.img"
    path.write_bytes(bombs.BOMBS[kind](640, 480)[:11])
    with pytest.raises(InputError) as info:
        io.read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


PEAK = """
import resource, sys
from edgematte.edge.io import read_image
from edgematte.edge.errors import InputError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_image(sys.argv[1])
except InputError as exc:
    print("refused", exc, file=sys.stderr)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0)
"""


@pytest.mark.parametrize("name,data", [("deflate.tif", bombs.deflate_tiff(8000, 8000)),
                                       ("claim.hdr", bombs.hdr(32000, 32000, payload=1 << 20))])
def test_refusal_peak_memory_stays_small(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    run = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, timeout=120)
    assert "refused" in run.stderr and "megapixels" in run.stderr, run.stderr
    assert float(run.stdout.strip()) < 64, "peak RSS grew by {} MB".format(run.stdout.strip())


def test_files_larger_than_any_allowed_image_are_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with open(path, "wb") as handle:  # sparse: takes no disk
        handle.write(bombs.deflate_tiff(8, 8))
        handle.truncate(io.max_file_bytes(1000) + 1)
    with pytest.raises(InputError) as info:
        io.read_image(path, max_pixels=1000)
    assert "MB" in str(info.value) and "max_pixels" in str(info.value)
    assert io.read_image(path, max_pixels=10 ** 7).shape == (8, 8, 3)  # within a larger limit it is read


def test_downscale_has_a_ceiling_for_formats_decoded_at_full_size(tmp_path: Path) -> None:
    path = tmp_path / "big.tif"
    path.write_bytes(bombs.deflate_tiff(400, 300))
    assert io.read_image(path, max_pixels=60000, downscale=True).shape[0] * 400 <= 60000 * 2
    with pytest.raises(InputError) as info:
        io.read_image(path, max_pixels=120000 // 5, downscale=True)
    assert "too large to downscale" in str(info.value)


# -- special files --------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_named_as_such(tmp_path: Path, model: Path, capsys) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(str(fifo))
    for reader in (io.read_image, io.probe_video):
        with pytest.raises(InputError) as info:
            reader(fifo)
        assert "FIFO" in str(info.value) and "not a regular file" in str(info.value)
    assert main(["mask", str(fifo), "-o", str(tmp_path / "out"), "-m", str(model), "--no-progress"]) == 1
    _one_line(capsys.readouterr().err, "pipe.png", "FIFO", "not a regular file")


# -- video frames ---------------------------------------------------------------------------------
def _clip(path: Path, size=(64, 48), frames: int = 4) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_video_frame_size_is_checked_from_the_container(tmp_path: Path, model: Path, capsys) -> None:
    clip = _clip(tmp_path / "clip.avi")
    with pytest.raises(InputError) as info:
        io.VideoReader(clip, max_pixels=1000)
    assert "64x48" in str(info.value)
    out = tmp_path / "out"
    assert main(["mask", str(clip), "-o", str(out), "-m", str(model), "--max-pixels", "1000", "--no-progress"]) == 1
    _one_line(capsys.readouterr().err, "clip.avi", "64x48", "megapixels")
    assert not out.exists() or not any(out.iterdir())
    assert main(["mask", str(clip), "-o", str(out), "-m", str(model), "--no-progress"]) == 0


def test_video_frame_size_is_checked_per_frame(tmp_path: Path) -> None:
    reader = io.VideoReader(_clip(tmp_path / "clip.avi"), max_pixels=10 ** 6)
    reader.max_pixels = 1000  # a stream whose frames outgrow what the container said
    with pytest.raises(InputError) as info:
        list(reader)
    assert "frame 0 is 64x48" in str(info.value)


# -- replace: a thin background -------------------------------------------------------------------
def test_thin_background_behind_a_wide_photo(tmp_path: Path, model: Path) -> None:
    photo, plate = tmp_path / "photo.png", tmp_path / "plate.png"
    cv2.imwrite(str(photo), np.full((270, 480, 3), 90, np.uint8))
    cv2.imwrite(str(plate), np.full((1, 50000, 3), 200, np.uint8))
    out = tmp_path / "out"
    assert main(["replace", str(photo), "--background", str(plate), "-o", str(out), "-m", str(model),
                 "--no-progress"]) == 0
    assert cv2.imread(str(out / "photo.png")).shape == (270, 480, 3)


def test_background_is_bounded_by_max_pixels(tmp_path: Path, model: Path, capsys) -> None:
    photo, plate = tmp_path / "photo.png", tmp_path / "plate.tif"
    cv2.imwrite(str(photo), np.full((20, 30, 3), 90, np.uint8))
    plate.write_bytes(bombs.deflate_tiff(2000, 2000))
    code = main(["replace", str(photo), "--background", str(plate), "-o", str(tmp_path / "out"), "-m", str(model),
                 "--max-pixels", "100000", "--no-progress"])
    assert code == 1
    _one_line(capsys.readouterr().err, "plate.tif", "2000x2000")


# -- numeric options ------------------------------------------------------------------------------
@pytest.mark.parametrize("args,option", [
    (["blur", "--strength", "30000"], "--strength"), (["blur", "--strength", "nan"], "--strength"),
    (["blur", "--strength", "inf"], "--strength"), (["blur", "--strength", "-1"], "--strength"),
    (["mask", "--nireq", "100000"], "--nireq"), (["mask", "--nireq", "-2"], "--nireq"),
    (["mask", "--max-pixels", "-1"], "--max-pixels"), (["mask", "--max-pixels", "0"], "--max-pixels"),
    (["mask", "--max-pixels", "1e300"], "--max-pixels"), (["mask", "--max-pixels", "nan"], "--max-pixels"),
    (["bench", "--niter", "0"], "--niter"), (["bench", "--time", "inf"], "--time"),
    (["bench", "--threads", "-1"], "--threads"), (["bench", "--percentile", "101"], "--percentile"),
    (["bench", "--nireq", "1e9"], "--nireq"), (["eval", "--limit", "0"], "--limit"),
    (["blur", "--camera", "-1"], "--camera"), (["replace", "--reconnect", "1e9"], "--reconnect"),
    (["clip", "--fps", "1e8"], "--fps"), (["clip", "--frames", "nan"], "--frames"),
    (["eval", "--flicker", "0"], "--flicker"), (["bench", "--video-frames", "-5"], "--video-frames"),
])
def test_numeric_options_outside_their_range_are_one_line(tmp_path: Path, capsys, args, option) -> None:
    verb, rest = args[0], args[1:]
    positional = {"eval": ["model.xml", str(tmp_path)], "bench": ["model.xml"],
                  "clip": ["x.png", "m.png", "-o", str(tmp_path)]}.get(verb, ["x.png", "-o", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        main([verb] + positional + rest)
    assert info.value.code == 2
    line = _one_line(capsys.readouterr().err, option, " to ")
    assert "-0.0" not in line


def test_option_types_accept_their_range() -> None:
    assert options.max_pixels("5e7") == 50000000
    assert options.strength("100") == 100.0 and options.strength("0") == 0.0
    assert options.nireq("0") == 0 and options.nireq("32") == 32
    assert options.fps("29.97") == pytest.approx(29.97)
    with pytest.raises(Exception):
        options.fps("1e8")
    with pytest.raises(EdgematteError):
        options.check_range("strength", float("nan"), 0, 100)


# -- eval -----------------------------------------------------------------------------------------
def test_emeasure_lies_in_the_unit_range_on_tiny_images() -> None:
    pytest.importorskip("py_sod_metrics")
    from edgematte.edge.metrics import SODMetrics

    for shape in [(1, 1), (1, 2), (3, 3)]:
        for pred, gt in [(0, 0), (255, 255), (128, 255), (0, 255)]:
            metrics = SODMetrics()
            metrics.step(np.full(shape, pred, np.uint8), np.full(shape, gt, np.uint8))
            result = metrics.results()
            assert all(0.0 <= result[k] <= 1.0 for k in ("maxE", "meanE", "adpE")), (shape, pred, gt, result)
    metrics = SODMetrics()
    metrics.step(np.full((1, 1), 255, np.uint8), np.full((1, 1), 255, np.uint8))
    assert metrics.results()["maxE"] == pytest.approx(1.0)


def test_two_images_with_one_stem_are_refused(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a.jpg", "a.png", "b.png"):
        cv2.imwrite(str(tmp_path / "images" / name), np.zeros((4, 4, 3), np.uint8))
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / "masks" / name), np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError) as info:
        datasets.find_pairs(tmp_path)
    assert "'a'" in str(info.value) and "a.jpg" in str(info.value) and "a.png" in str(info.value)


def test_one_suffix_list_and_folder_formats(tmp_path: Path, model: Path, capsys) -> None:
    assert datasets.IMAGE_EXTS is io.IMAGE_SUFFIXES and datasets.MASK_EXTS is io.IMAGE_SUFFIXES
    folder = tmp_path / "in"
    folder.mkdir()
    jpeg = cv2.imencode(".jpg", np.full((12, 10, 3), 120, np.uint8))[1].tobytes()
    for name in ("a.jfif", "b.jpe"):
        (folder / name).write_bytes(jpeg)
    for name in ("c.gif", "e.avif"):
        ok, buffer = cv2.imencode(Path(name).suffix, np.full((12, 10, 3), 120, np.uint8))
        assert ok
        (folder / name).write_bytes(buffer.tobytes())
    (folder / "d.heic").write_bytes(b"\x00" * 16)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["mask", str(folder), "-o", str(out), "-m", str(model), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "e.png"]
    _one_line(capsys.readouterr().err, "1 image(s) skipped", ".heic")
    assert len(datasets.list_images(folder)) == 4


def test_blur_near_the_image_size_stays_fast() -> None:
    import time

    from edgematte.edge import compose

    image = np.random.default_rng(0).integers(0, 255, (540, 960, 3), dtype=np.uint8)
    alpha = np.zeros((540, 960), np.float32)
    alpha[100:400, 300:600] = 1
    start = time.perf_counter()
    out = compose.blur(image, alpha, 100)
    assert out.shape == image.shape and time.perf_counter() - start < 5.0
    with pytest.raises(InputError):
        compose.blur(image, alpha, float("nan"))


def test_api_blur_strength_has_the_cli_range() -> None:
    from edgematte.edge.apply import make_operation

    for bad in (float("nan"), float("inf"), -1.0, 30000.0):
        with pytest.raises(EdgematteError) as info:
            make_operation("blur", strength=bad)
        assert "strength" in str(info.value)
