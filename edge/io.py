"""Safe image and video I/O: every reader normalises what OpenCV decodes, every writer is atomic, every failure is one line."""
import contextlib
import os
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple, Union

# OpenCV's FFmpeg backend reads this once, at the first video opened in the process: keep FFmpeg's own messages
# ("moov atom not found") off stderr, since every unreadable video becomes a one-line InputError here. A value the
# user set is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .errors import InputError  # noqa: E402
from .imagesize import header_size  # noqa: E402

PathLike = Union[str, "os.PathLike[str]"]

# The one list of image suffixes the kit reads (folders, datasets, backgrounds): every format OpenCV decodes whose
# size edge.imagesize reads from the header.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp",
                  ".avif", ".jp2", ".j2k", ".pgm", ".ppm", ".pbm", ".pnm", ".pam", ".pfm", ".sr", ".ras", ".exr",
                  ".hdr", ".pic")
# Image formats the kit does not read (OpenCV cannot decode them here): a folder holding some says so on one line.
UNREAD_IMAGE_SUFFIXES = (".heic", ".heif", ".jxl", ".svg", ".psd", ".ico", ".tga", ".xcf", ".raw", ".dng", ".cr2",
                         ".cr3", ".nef", ".arw", ".orf", ".rw2")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
# Containers we write, with the fourcc OpenCV's bundled FFmpeg encodes into them.
VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
DEFAULT_MAX_PIXELS = 50000000  # 50 megapixels: above this an image is refused (or downscaled on request)
# A file may hold at most this many bytes per allowed pixel (float32 RGBA, uncompressed) plus metadata; larger files
# are refused before they are read.
MAX_BYTES_PER_PIXEL = 16
METADATA_BYTES = 64 << 20
# --downscale-large decodes JPEG at 1/8 at most and other formats at full size: the pixels decoded stay under this
# many times max_pixels.
DOWNSCALE_DECODE_FACTOR = {"jpeg": 64, "other": 4}


# -- atomic writes ------------------------------------------------------------------------------
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temp path in the target's directory (same suffix); os.replace it onto `path` only on success."""
    from .outputs import check_name_fits, temp_prefix

    target = Path(path)
    check_name_fits(target)  # the final name must fit; the temporary one is cut to fit (edge.outputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=temp_prefix(target.stem, ".tmp" + target.suffix, target.parent),
                                   suffix=".tmp" + target.suffix, dir=str(target.parent))
    os.close(handle)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield tmp
        os.replace(tmp, str(target))
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: PathLike, kind: str = "folder") -> Iterator[str]:
    """Yield a hidden staging folder beside `path`; it becomes `path` whole only on success, replacing an older
    folder only when the kit can prove it wrote every file in it (edge.outputs.owned_folder)."""
    from .outputs import owned_folder

    with owned_folder(path, kind, option="") as staging:
        yield str(staging)


def _remove(path: str) -> None:
    """Best-effort removal of a temp file or folder."""
    try:
        if os.path.isdir(path):
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)
    except OSError:
        pass


def write_bytes(path: PathLike, data: bytes) -> None:
    """Write bytes atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 text atomically (reports, JSON)."""
    write_bytes(path, text.encode("utf-8"))


def write_image(path: PathLike, image: np.ndarray, params: Optional[Tuple[int, ...]] = None) -> None:
    """Encode `image` (BGR, BGRA or single channel; uint8 or uint16) by the path's suffix and write it atomically."""
    suffix = Path(path).suffix.lower() or ".png"
    try:
        ok, buffer = cv2.imencode(suffix, np.ascontiguousarray(image), list(params or ()))
    except cv2.error as exc:
        raise InputError("{}: cannot encode a {} {} image as {} ({})".format(
            path, "x".join(str(s) for s in image.shape), image.dtype, suffix, _first_line(str(exc)))) from None
    if not ok:
        raise InputError("{}: cannot encode the image as {}".format(path, suffix))
    write_bytes(path, buffer.tobytes())


# -- image header parsing (sizes before decoding, EXIF orientation) -------------------------------
def image_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(height, width) from the header without decoding: PNG/JPEG/BMP/GIF/WebP here, the other formats OpenCV
    decodes in edge.imagesize; None when unknown or cut."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return height, width
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:2] == b"BM" and len(data) >= 26:
            if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
                width, height = struct.unpack("<HH", data[18:22])
            else:
                width, height = struct.unpack("<ii", data[18:26])
            return abs(height), abs(width)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return height, width
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
    except struct.error:
        return None
    return header_size(data)


def _jpeg_segments(data: bytes) -> Iterator[Tuple[int, int, int]]:
    """Yield (marker, payload start, payload length) of the JPEG header segments, up to the first SOS."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a payload
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        yield marker, pos + 4, length - 2
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        pos += 2 + length


def _jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    for marker, start, _ in _jpeg_segments(data):
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[start + 1:start + 5])
            return height, width
    return None


def _jpeg_is_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the first scan (0xFFD9 cannot occur inside entropy-coded data)."""
    sos = None
    for marker, start, length in _jpeg_segments(data):
        if marker == 0xDA:
            sos = start + length
    return sos is not None and data.rfind(b"\xff\xd9") >= sos


def _webp_size(data: bytes) -> Optional[Tuple[int, int]]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return height, width
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return height & 0x3FFF, width & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    return None


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (1..8) of a JPEG (APP1) or PNG (eXIf chunk); 1 when absent or unreadable."""
    try:
        tiff = None
        if data[:2] == b"\xff\xd8":
            for marker, start, length in _jpeg_segments(data):
                if marker == 0xE1 and data[start:start + 6] == b"Exif\x00\x00":
                    tiff = data[start + 6:start + length]
                    break
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            pos = 8
            while pos + 8 <= len(data):
                length = struct.unpack(">I", data[pos:pos + 4])[0]
                kind = data[pos + 4:pos + 8]
                if kind == b"eXIf":
                    tiff = data[pos + 8:pos + 8 + length]
                    break
                if kind in (b"IDAT", b"IEND"):
                    break
                pos += 12 + length
        return _tiff_orientation(tiff) if tiff else 1
    except (struct.error, IndexError, ValueError):
        return 1


def _tiff_orientation(tiff: bytes) -> int:
    """Orientation (tag 0x0112) from IFD0 of a TIFF-structured EXIF block."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None:
        return 1
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack(order + "HH", tiff[entry:entry + 4])
        if tag == 0x0112 and kind == 3:  # SHORT
            value = struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored image upright per its EXIF orientation (1..8), as viewers and cv2.IMREAD_COLOR do."""
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return cv2.transpose(image)
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(image), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


# -- image reading --------------------------------------------------------------------------------
def special_file_kind(path: PathLike) -> Optional[str]:
    """What a path that exists but is neither a regular file nor a folder is ("a FIFO (named pipe)", ...); None for
    regular files, folders and missing paths."""
    try:
        mode = os.stat(str(path)).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def max_file_bytes(max_pixels: Optional[int]) -> Optional[int]:
    """The largest file an image of at most `max_pixels` pixels can take (None: no limit)."""
    return max_pixels * MAX_BYTES_PER_PIXEL + METADATA_BYTES if max_pixels else None


def _read_bytes(path: PathLike, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> bytearray:
    """The file's bytes, read once into one buffer (numpy and OpenCV use it without a copy), or an InputError
    naming it (missing, folder, FIFO or device, larger than any image within `max_pixels` can be, unreadable,
    empty)."""
    p = Path(path)
    try:
        info = os.stat(str(p))
    except FileNotFoundError:
        raise InputError("{}: no such file".format(path)) from None
    except (OSError, ValueError) as exc:
        raise InputError("{}: cannot read ({})".format(path, getattr(exc, "strerror", None) or exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError("{}: is a folder, not an image".format(path))
    if not stat.S_ISREG(info.st_mode):
        raise InputError("{}: is {}, not a regular file; images are read from files".format(
            path, special_file_kind(p) or "not a regular file"))
    limit = max_file_bytes(max_pixels)
    if limit is not None and info.st_size > limit:
        raise InputError("{}: the file is {:.1f} MB, more than an image of at most {:.1f} megapixels can take "
                         "({:.1f} MB); raise max_pixels if it is one".format(
                             path, info.st_size / 1e6, max_pixels / 1e6, limit / 1e6))
    if info.st_size == 0:
        raise InputError("{}: empty file".format(path))
    data = bytearray(info.st_size)
    try:
        with open(str(p), "rb", buffering=0) as handle:
            read = handle.readinto(data)
            while read is not None and 0 < read < len(data):  # readinto may return short counts
                more = handle.readinto(memoryview(data)[read:])
                if not more:
                    break
                read += more
    except OSError as exc:
        raise InputError("{}: cannot read ({})".format(path, exc.strerror or exc)) from None
    if read != len(data):
        raise InputError("{}: the file changed while it was read ({} of {} bytes)".format(path, read, len(data)))
    return data


def _decode(path: PathLike, data: bytes, max_pixels: Optional[int], downscale: bool) -> Tuple[np.ndarray, int]:
    """Decode bytes as-is (bit depth and channels kept) and return (array, EXIF orientation); refuse huge images
    from the header, and files whose header gives no size, before anything is decoded."""
    if data[:2] == b"\xff\xd8" and not _jpeg_is_complete(data):
        raise InputError("{}: truncated or corrupt JPEG (no end-of-image marker)".format(path))
    size = image_size(data)
    if max_pixels and size is None:
        raise InputError("{}: not a readable image (unknown format, or a cut or damaged header without an image "
                         "size)".format(path))
    if size is not None and (size[0] <= 0 or size[1] <= 0):
        raise InputError("{}: not a readable image (its header gives a size of {}x{})".format(path, size[1], size[0]))
    buffer = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_UNCHANGED
    if size is not None and max_pixels and size[0] * size[1] > max_pixels:
        jpeg = data[:2] == b"\xff\xd8"
        factor = DOWNSCALE_DECODE_FACTOR["jpeg" if jpeg else "other"]
        if downscale and size[0] * size[1] > factor * max_pixels:
            raise InputError("{}: {}x{} is {:.1f} megapixels, too large to downscale within the limit of {:.1f} "
                             "(at most {}x the limit for {}; raise max_pixels)".format(
                                 path, size[1], size[0], size[0] * size[1] / 1e6, max_pixels / 1e6, factor,
                                 "JPEG" if jpeg else "this format"))
        if not downscale:
            raise InputError("{}: {}x{} is {:.1f} megapixels, above the limit of {:.1f} (raise max_pixels or "
                             "downscale)".format(path, size[1], size[0], size[0] * size[1] / 1e6, max_pixels / 1e6))
        # Decode at 1/2, 1/4 or 1/8 (JPEG decodes reduced for almost free); the exact fit is done below.
        ratio = size[0] * size[1] / float(max_pixels)
        flags = cv2.IMREAD_REDUCED_COLOR_2 if ratio <= 4 else (
            cv2.IMREAD_REDUCED_COLOR_4 if ratio <= 16 else cv2.IMREAD_REDUCED_COLOR_8)
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as exc:
        raise InputError("{}: not a readable image ({})".format(path, _first_line(str(exc)))) from None
    if image is None or image.size == 0:
        raise InputError("{}: not a readable image (unknown format, corrupt or truncated)".format(path))
    # IMREAD_REDUCED_* already applied EXIF orientation; IMREAD_UNCHANGED ignores it.
    orientation = exif_orientation(data) if flags == cv2.IMREAD_UNCHANGED else 1
    if max_pixels and image.shape[0] * image.shape[1] > max_pixels:
        if not downscale:
            raise InputError("{}: {}x{} is {:.1f} megapixels, above the limit of {:.1f} (raise max_pixels or "
                             "downscale)".format(path, image.shape[1], image.shape[0],
                                                 image.shape[0] * image.shape[1] / 1e6, max_pixels / 1e6))
        image = _fit_pixels(image, max_pixels)
    return image, orientation


def _fit_pixels(image: np.ndarray, max_pixels: int) -> np.ndarray:
    """Shrink (area interpolation, aspect kept) so that height*width <= max_pixels."""
    h, w = image.shape[:2]
    scale = (max_pixels / float(h * w)) ** 0.5
    nh, nw = max(1, int(h * scale)), max(1, int(w * scale))
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit by scaling (v/257), float assumed in [0,1]; other integer types clipped."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype.kind == "f":  # in place: the decoded array is ours, and a second float copy would double the peak
        image = np.nan_to_num(image, copy=False)
        np.clip(image, 0.0, 1.0, out=image)
        image *= 255.0
        image += 0.5
        return image.astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def read_image(path: PathLike, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, downscale: bool = False) -> np.ndarray:
    """Read an image as upright BGR uint8 HxWx3.

    Grayscale becomes BGR, 16-bit is scaled to 8-bit, alpha is dropped (the colour channels are kept as stored,
    not composited), EXIF orientation (JPEG APP1, PNG eXIf) is applied, CMYK JPEGs arrive as BGR from OpenCV.
    Images above `max_pixels` (checked from the header before decoding where the format allows) are refused,
    or shrunk to fit when `downscale` is True. Any failure is an InputError naming the file.
    """
    data = _read_bytes(path, max_pixels)
    image, orientation = _decode(path, data, max_pixels, downscale)
    image = _to_uint8(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = np.ascontiguousarray(image[:, :, :3])
    elif image.shape[2] in (1, 2):  # gray (+ alpha)
        image = cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2BGR)
    elif image.shape[2] != 3:
        raise InputError("{}: unsupported image with {} channels".format(path, image.shape[2]))
    return apply_orientation(image, orientation)


def read_mask(path: PathLike, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a mask/alpha as float32 HxW in [0,1] (8/16-bit/float; the alpha channel when it is not all opaque, else
    the first channel), EXIF orientation applied."""
    data = _read_bytes(path, max_pixels)
    image, orientation = _decode(path, data, max_pixels, False)
    if image.ndim == 3:
        if image.shape[2] in (2, 4):
            alpha = image[:, :, -1]
            full = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
            image = alpha if alpha.min() < full else image[:, :, 0]
        else:
            image = image[:, :, 0]
    if image.dtype.kind in "ui":
        mask = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    else:
        mask = np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0)
    return np.ascontiguousarray(apply_orientation(mask, orientation))


def read_stored(path: PathLike, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The image as stored (bit depth and channels kept), EXIF orientation applied, bounded and checked as
    read_image is: for readers that need the raw channels (an RGBA cutout's alpha)."""
    data = _read_bytes(path, max_pixels)
    image, orientation = _decode(path, data, max_pixels, False)
    return np.ascontiguousarray(apply_orientation(image, orientation))


def quiet_opencv() -> None:
    """Silence OpenCV's own stderr logging (decoder warnings on corrupt files): the CLI reports each bad input on one
    line of its own."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None and hasattr(logging, "setLogLevel"):
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    elif hasattr(cv2, "setLogLevel"):  # older builds
        cv2.setLogLevel(0)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


# -- video ----------------------------------------------------------------------------------------
@dataclass
class VideoInfo:
    """What a video holds: frames per second, frame count (as the container reports it), frame size."""

    fps: float
    frame_count: int
    width: int
    height: int


def _capture_api() -> int:
    """FFmpeg when this OpenCV has it (the pip wheels do): OpenCV's fallback readers, tried in turn when FFmpeg
    refuses a file, print their own parse errors on stderr ("Unexpected element"); any backend otherwise."""
    registry = getattr(cv2, "videoio_registry", None)
    try:
        if registry is not None and registry.hasBackend(cv2.CAP_FFMPEG):
            return cv2.CAP_FFMPEG
    except cv2.error:
        pass
    return cv2.CAP_ANY


def _open_capture(path: PathLike) -> "cv2.VideoCapture":
    p = Path(path)
    if not p.is_file():
        kind = special_file_kind(p)
        if kind is not None:
            raise InputError("{}: is {}, not a regular file; videos are read from files".format(path, kind))
        raise InputError("{}: no such file".format(path))
    if p.stat().st_size == 0:
        raise InputError("{}: empty file".format(path))
    capture = cv2.VideoCapture(str(p), _capture_api())
    if not capture.isOpened():
        capture.release()
        raise InputError("{}: not a readable video".format(path))
    return capture


def _frame_too_large(path: PathLike, width: int, height: int, max_pixels: int, where: str) -> InputError:
    return InputError("{}: {} {}x{} ({:.1f} megapixels), above the limit of {:.1f} (videos are not downscaled; "
                      "raise max_pixels)".format(path, where, width, height, width * height / 1e6, max_pixels / 1e6))


def probe_video(path: PathLike, max_pixels: Optional[int] = None) -> VideoInfo:
    """Frame rate, frame count and size of a video, from the container before any frame is decoded; InputError
    when it cannot be opened or its frames are larger than `max_pixels`."""
    capture = _open_capture(path)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        info = VideoInfo(fps=float(fps) if fps and fps > 0 else 25.0,
                         frame_count=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                         width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()
    if info.width <= 0 or info.height <= 0:
        raise InputError("{}: not a readable video (no frame size)".format(path))
    if max_pixels and info.width * info.height > max_pixels:
        raise _frame_too_large(path, info.width, info.height, max_pixels, "its frames are")
    return info


class VideoReader:
    """Iterate a video's frames as BGR uint8; unreadable frames are skipped and counted in `.broken`.

    A failed read followed by a good frame was a broken frame (FFmpeg consumes the damaged packet, so reading goes
    on with the next one); failed reads at the end are the end of the stream, not broken frames. Frames the header
    declares beyond the last readable one (a truncated file) are counted in `.missing` once iteration ends.
    `on_broken(index)` is called with the 0-based stream position of each skipped frame.
    """

    def __init__(self, path: PathLike, max_broken: int = 25,
                 on_broken: Optional[Callable[[int], None]] = None,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> None:
        self.path = path
        self.max_pixels = max_pixels  # checked from the container first, then on every frame
        self.info = probe_video(path, max_pixels)
        self.max_broken = max_broken  # consecutive failed reads after which the rest is taken as the end
        self.on_broken = on_broken
        self.broken = 0
        self.frames = 0
        self.missing = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        capture = _open_capture(self.path)
        try:
            failed = 0  # consecutive failed reads: broken frames if a good one follows, else the end
            while True:
                ok, frame = capture.read()
                if ok and frame is not None and frame.size:
                    if self.max_pixels and frame.shape[0] * frame.shape[1] > self.max_pixels:
                        raise _frame_too_large(self.path, frame.shape[1], frame.shape[0], self.max_pixels,
                                               "frame {} is".format(self.frames + self.broken + failed))
                    for _ in range(failed):
                        self._skipped(self.frames + self.broken)
                    failed = 0
                    self.frames += 1
                    yield _to_uint8(frame) if frame.ndim == 3 else cv2.cvtColor(_to_uint8(frame), cv2.COLOR_GRAY2BGR)
                    continue
                if self.frames + self.broken >= self.info.frame_count:
                    break  # a failed read after every declared frame: the normal end
                failed += 1
                if failed > self.max_broken:
                    break
        finally:
            capture.release()
        self.missing = max(0, self.info.frame_count - self.frames - self.broken)
        if self.frames == 0:
            raise InputError("{}: the video has no readable frame".format(self.path))

    def _skipped(self, index: int) -> None:
        self.broken += 1
        if self.on_broken is not None:
            self.on_broken(index)


def iter_video_frames(path: PathLike, on_broken: Optional[Callable[[int], None]] = None,
                      max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> VideoReader:
    """The frames of a video (BGR uint8); the returned reader counts skipped broken frames in `.broken`."""
    return VideoReader(path, on_broken=on_broken, max_pixels=max_pixels)


def video_suffix_for_writing(suffix: str) -> str:
    """The container to write for an input suffix: the same one when OpenCV can write it, else .mp4."""
    suffix = suffix.lower()
    return suffix if suffix in VIDEO_FOURCC else ".mp4"


class VideoWriter:
    """Write BGR frames to a temp file next to `path`; it becomes `path` only when the block ends without error."""

    def __init__(self, path: PathLike, fps: float, size: Tuple[int, int]) -> None:
        self.path = Path(path)
        self.fps = fps
        self.size = size  # (width, height)
        self._atomic = None  # type: Optional[contextlib.AbstractContextManager]
        self._writer = None
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FOURCC:
            raise InputError("{}: cannot write video as {} (supported: {})".format(
                self.path, suffix or "no suffix", ", ".join(sorted(VIDEO_FOURCC))))
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*VIDEO_FOURCC[suffix]), self.fps, self.size)
        if not writer.isOpened():
            self._atomic.__exit__(InputError, InputError("open failed"), None)
            raise InputError("{}: OpenCV cannot open a {} video writer here".format(self.path, VIDEO_FOURCC[suffix]))
        self._writer = writer
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (BGR uint8, or single channel which is written as gray)."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if (frame.shape[1], frame.shape[0]) != tuple(self.size):
            frame = cv2.resize(frame, tuple(self.size), interpolation=cv2.INTER_LINEAR)
        self._writer.write(np.ascontiguousarray(frame))
        self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._writer is not None:
            self._writer.release()
        if exc_type is None and self.frames == 0:
            exc_type, exc = InputError, InputError("{}: no frame was written".format(self.path))
            self._atomic.__exit__(exc_type, exc, None)
            raise exc
        self._atomic.__exit__(exc_type, exc, tb)
        return False


__all__ = ["IMAGE_SUFFIXES", "UNREAD_IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "DEFAULT_MAX_PIXELS", "atomic_path", "atomic_dir", "write_bytes",
           "write_text", "write_image", "read_image", "read_mask", "read_stored", "quiet_opencv", "image_size",
           "exif_orientation", "special_file_kind", "max_file_bytes",
           "apply_orientation", "VideoInfo", "probe_video", "VideoReader", "iter_video_frames", "VideoWriter",
           "video_suffix_for_writing"]
