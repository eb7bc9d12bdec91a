"""Image sizes read from file headers, before anything is decoded: TIFF (both byte orders, BigTIFF), Radiance HDR,
PNM/PAM/PFM, Sun raster, OpenEXR, JPEG 2000 (JP2 and raw codestream) and AVIF/HEIF. PNG, JPEG, BMP, GIF and WebP
are read by edge.io.image_size, which falls back to `header_size` here for everything else."""
from __future__ import annotations

import re
import struct
from typing import Iterator, Optional, Tuple

Size = Tuple[int, int]  # (height, width)
HEADER_SCAN = 1 << 16  # text headers (HDR, PNM, PAM) and box walks look no further than this


def header_size(data: bytes) -> Optional[Size]:
    """(height, width) of a TIFF/HDR/PNM/PAM/PFM/Sun raster/EXR/JPEG 2000/AVIF header; None when unknown or cut."""
    try:
        for signature, reader in _READERS:
            if data[:len(signature)] == signature:
                return reader(data)
        if data[4:8] == b"ftyp":
            return _isobmff_size(data)
    except (struct.error, IndexError, ValueError, OverflowError, StopIteration):
        return None
    return None


# -- TIFF -------------------------------------------------------------------------------------------
def _tiff_size(data: bytes) -> Optional[Size]:
    """ImageWidth (256) and ImageLength (257) of the first IFD, the page OpenCV decodes; classic and BigTIFF."""
    order = "<" if data[:2] == b"II" else ">"
    version = struct.unpack(order + "H", data[2:4])[0]
    if version == 42:
        offset = struct.unpack(order + "I", data[4:8])[0]
        count = struct.unpack(order + "H", data[offset:offset + 2])[0]
        start, step, value_at = offset + 2, 12, 8
    elif version == 43:  # BigTIFF: 8-byte offsets and counts
        offset = struct.unpack(order + "Q", data[8:16])[0]
        count = struct.unpack(order + "Q", data[offset:offset + 8])[0]
        start, step, value_at = offset + 8, 20, 12
    else:
        return None
    formats = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
    found = {}
    for i in range(min(count, 4096)):
        entry = start + step * i
        tag, kind = struct.unpack(order + "HH", data[entry:entry + 4])
        if tag in (256, 257) and kind in formats:
            width = struct.calcsize(formats[kind])
            found[tag] = struct.unpack(order + formats[kind], data[entry + value_at:entry + value_at + width])[0]
    if 256 in found and 257 in found:
        return int(found[257]), int(found[256])
    return None


# -- Radiance HDR -----------------------------------------------------------------------------------
_HDR_RESOLUTION = re.compile(rb"([-+])([XY]) +(\d+) +([-+])([XY]) +(\d+)")


def _hdr_size(data: bytes) -> Optional[Size]:
    """The resolution line after the blank line that ends the header ("-Y 480 +X 640": height, then width)."""
    head = bytes(data[:HEADER_SCAN])
    end = head.find(b"\n\n")
    if end < 0:
        return None
    line = head[end + 2:].split(b"\n", 1)[0].strip()
    match = _HDR_RESOLUTION.fullmatch(line)
    if match is None or match.group(2) == match.group(5):
        return None
    first, second = int(match.group(3)), int(match.group(6))
    return (first, second) if match.group(2) == b"Y" else (second, first)


# -- PNM family -------------------------------------------------------------------------------------
def _pnm_tokens(data: bytes, start: int) -> Iterator[bytes]:
    """Whitespace-separated header tokens after the magic, '#' comments skipped."""
    head = bytes(data[start:HEADER_SCAN])
    for line in head.split(b"\n"):
        for token in line.split(b"#", 1)[0].split():
            yield token


def _pnm_size(data: bytes) -> Optional[Size]:
    """P1-P6 (PBM/PGM/PPM) and PF/Pf (PFM): width then height after the magic."""
    tokens = _pnm_tokens(data, 2)
    width, height = int(next(tokens)), int(next(tokens))
    return height, width


def _pam_size(data: bytes) -> Optional[Size]:
    """P7 (PAM): WIDTH and HEIGHT lines before ENDHDR."""
    values = {}
    for line in bytes(data[3:HEADER_SCAN]).split(b"\n"):
        words = line.split(b"#", 1)[0].split()
        if words and words[0] == b"ENDHDR":
            break
        if len(words) == 2 and words[0] in (b"WIDTH", b"HEIGHT"):
            values[words[0]] = int(words[1])
    if b"WIDTH" in values and b"HEIGHT" in values:
        return values[b"HEIGHT"], values[b"WIDTH"]
    return None


# -- Sun raster, OpenEXR ----------------------------------------------------------------------------
def _sun_size(data: bytes) -> Optional[Size]:
    width, height = struct.unpack(">II", data[4:12])
    return height, width


def _exr_size(data: bytes) -> Optional[Size]:
    """The dataWindow (box2i) attribute of the first header: the pixels OpenCV allocates."""
    pos = 8
    limit = min(len(data), HEADER_SCAN * 16)
    while pos < limit:
        name_end = data.index(b"\x00", pos, limit)
        if name_end == pos:  # an empty name ends the header
            return None
        kind_end = data.index(b"\x00", name_end + 1, limit)
        name = bytes(data[pos:name_end])
        length = struct.unpack("<i", data[kind_end + 1:kind_end + 5])[0]
        value = kind_end + 5
        if length < 0:
            return None
        if name == b"dataWindow" and length >= 16:
            x_min, y_min, x_max, y_max = struct.unpack("<iiii", data[value:value + 16])
            return y_max - y_min + 1, x_max - x_min + 1
        pos = value + length
    return None


# -- JPEG 2000 and ISO base media (AVIF, HEIF) ------------------------------------------------------
def _boxes(data: bytes, start: int, end: int) -> Iterator[Tuple[bytes, int, int]]:
    """Yield (type, payload start, payload end) of the ISO/JP2 boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            header = 16
        elif size == 0:  # the box runs to the end
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(end, pos + size)
        pos += size


def _jp2_size(data: bytes) -> Optional[Size]:
    """The larger of the ihdr box (in jp2h) and the codestream's SIZ marker (in jp2c): the decoder trusts the
    codestream, so a small ihdr in front of a huge codestream does not pass."""
    sizes = []
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind == b"jp2h":
            for inner, payload, _ in _boxes(data, start, end):
                if inner == b"ihdr":
                    sizes.append(struct.unpack(">II", data[payload:payload + 8]))
        elif kind == b"jp2c":
            sizes.append(_j2k_size(data[start:start + 64]))
            break
    if not sizes or None in sizes:
        return None
    return max(((int(h), int(w)) for h, w in sizes), key=lambda size: size[0] * size[1])


def _j2k_size(data: bytes) -> Optional[Size]:
    """The image area of a raw codestream's SIZ marker (Xsiz - XOsiz by Ysiz - YOsiz)."""
    if data[:4] != b"\xff\x4f\xff\x51":
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", data[8:24])
    return int(ysiz - yosiz), int(xsiz - xosiz)


def _isobmff_size(data: bytes) -> Optional[Size]:
    """The largest ispe (image spatial extents) property under meta/iprp/ipco: AVIF and HEIF keep sizes there."""
    best = None  # type: Optional[Size]
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"meta":
            continue
        for inner, payload, inner_end in _boxes(data, start + 4, end):  # meta is a full box: skip version/flags
            if inner != b"iprp":
                continue
            for prop, prop_start, prop_end in _boxes(data, payload, inner_end):
                if prop != b"ipco":
                    continue
                for item, item_start, _ in _boxes(data, prop_start, prop_end):
                    if item == b"ispe":
                        width, height = struct.unpack(">II", data[item_start + 4:item_start + 12])
                        if best is None or width * height > best[0] * best[1]:
                            best = (height, width)
        return best
    return None


_READERS = (
    (b"II*\x00", _tiff_size), (b"MM\x00*", _tiff_size), (b"II+\x00", _tiff_size), (b"MM\x00+", _tiff_size),
    (b"#?RADIANCE", _hdr_size), (b"#?RGBE", _hdr_size),
    (b"P1", _pnm_size), (b"P2", _pnm_size), (b"P3", _pnm_size), (b"P4", _pnm_size), (b"P5", _pnm_size),
    (b"P6", _pnm_size), (b"PF", _pnm_size), (b"Pf", _pnm_size), (b"P7", _pam_size),
    (b"\x59\xa6\x6a\x95", _sun_size),
    (b"\x76\x2f\x31\x01", _exr_size),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", _jp2_size), (b"\xff\x4f\xff\x51", _j2k_size),
)

__all__ = ["header_size", "HEADER_SCAN"]
