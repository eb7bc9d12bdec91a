"""Small files whose headers claim huge images (TIFF both byte orders and BigTIFF, Radiance HDR, PNM/PAM/PFM, Sun
raster, OpenEXR, JPEG 2000, AVIF): the shapes a decompression bomb takes, for the input-bound tests and the fuzz."""
import struct
import zlib
from typing import Callable, Dict


def tiff(width: int, height: int, order: str = "<", big: bool = False, payload: int = 0) -> bytes:
    """A TIFF (or BigTIFF) whose first IFD claims width x height, 8-bit RGB, uncompressed, one strip of junk."""
    mark = b"II" if order == "<" else b"MM"
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
            (277, 3, 1, 3), (278, 4, 1, height), (279, 4, 1, payload or 1)]
    if big:
        head = mark + struct.pack(order + "HHHQ", 43, 8, 0, 16)
        strip = 16 + 8 + 20 * (len(tags) + 1) + 8
        tags.append((273, 16, 1, strip))
        tags.sort()
        fields = {3: "H", 4: "I", 16: "Q"}  # values are left-justified in the 8-byte field
        ifd = struct.pack(order + "Q", len(tags)) + b"".join(
            struct.pack(order + "HHQ", t, k, c) + struct.pack(order + fields[k], v).ljust(8, b"\x00")
            for t, k, c, v in tags) + struct.pack(order + "Q", 0)
    else:
        head = mark + struct.pack(order + "HI", 42, 8)
        strip = 8 + 2 + 12 * (len(tags) + 1) + 4
        tags.append((273, 4, 1, strip))
        tags.sort()
        entries = []
        for t, k, c, v in tags:
            value = struct.pack(order + "HH", v, 0) if k == 3 else struct.pack(order + "I", v)
            entries.append(struct.pack(order + "HHI", t, k, c) + value)
        ifd = struct.pack(order + "H", len(tags)) + b"".join(entries) + struct.pack(order + "I", 0)
    return head + ifd + b"\x00" * max(1, payload)


def deflate_tiff(width: int, height: int, order: str = "<", rows: int = 64) -> bytes:
    """A real, decodable TIFF of width x height black RGB pixels: every deflate strip points at one shared blob, so
    a few hundred KB decode to width * height * 3 bytes."""
    strips = (height + rows - 1) // rows
    blob = zlib.compress(b"\x00" * (rows * width * 3), 9)
    mark = b"II" if order == "<" else b"MM"
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 2),
            (273, 4, strips, None), (277, 3, 1, 3), (278, 4, 1, rows), (279, 4, strips, None)]
    ifd_size = 2 + 12 * len(tags) + 4
    offsets_at = 8 + ifd_size
    counts_at = offsets_at + 4 * strips
    blob_at = counts_at + 4 * strips
    entries = []
    for t, k, c, v in tags:
        if t == 273:  # one strip: the value itself fits in the entry; more: an offset to the array
            value = struct.pack(order + "I", blob_at if strips == 1 else offsets_at)
        elif t == 279:
            value = struct.pack(order + "I", len(blob) if strips == 1 else counts_at)
        else:
            value = struct.pack(order + "HH", v, 0) if k == 3 else struct.pack(order + "I", v)
        entries.append(struct.pack(order + "HHI", t, k, c) + value)
    ifd = struct.pack(order + "H", len(tags)) + b"".join(entries) + struct.pack(order + "I", 0)
    arrays = struct.pack(order + "%dI" % strips, *([blob_at] * strips))
    arrays += struct.pack(order + "%dI" % strips, *([len(blob)] * strips))
    return mark + struct.pack(order + "HI", 42, 8) + ifd + arrays + blob


def hdr(width: int, height: int, payload: int = 0) -> bytes:
    """A Radiance HDR whose resolution line claims width x height, followed by `payload` bytes of flat RLE data."""
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (height, width) + b"\x02\x02" * (payload // 2)


def pnm(width: int, height: int, magic: bytes = b"P6") -> bytes:
    """A PBM/PGM/PPM/PFM header claiming width x height, with a few pixels."""
    extra = b"" if magic in (b"P1", b"P4") else (b"-1\n" if magic in (b"PF", b"Pf") else b"255\n")
    return magic + b"\n# made by tests\n%d %d\n" % (width, height) + extra + b"\x00" * 64


def pam(width: int, height: int) -> bytes:
    """A PAM (P7) header claiming width x height."""
    return b"P7\nWIDTH %d\nHEIGHT %d\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" % (width, height) + b"\x00" * 64


def sun(width: int, height: int) -> bytes:
    """A Sun raster header claiming width x height, 24-bit."""
    return struct.pack(">8I", 0x59A66A95, width, height, 24, (width * height * 3) & 0xFFFFFFFF, 1, 0, 0) + b"\x00" * 64


def exr(width: int, height: int) -> bytes:
    """An OpenEXR header whose dataWindow claims width x height (no pixel data)."""
    def attribute(name: bytes, kind: bytes, value: bytes) -> bytes:
        return name + b"\x00" + kind + b"\x00" + struct.pack("<i", len(value)) + value
    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    return (b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + attribute(b"channels", b"chlist", b"R\x00" + b"\x00" * 16
                                                                                          + b"\x00")
            + attribute(b"compression", b"compression", b"\x00") + attribute(b"dataWindow", b"box2i", box)
            + attribute(b"displayWindow", b"box2i", box) + b"\x00" + b"\x00" * 64)


def jp2(width: int, height: int) -> bytes:
    """A JP2 whose ihdr box and codestream SIZ marker claim width x height."""
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body
    ihdr = box(b"ihdr", struct.pack(">IIHBBBB", height, width, 3, 7, 7, 0, 0))
    siz = b"\xff\x4f\xff\x51" + struct.pack(">HHIIIIIIIIH", 47, 0, width, height, 0, 0, width, height, 0, 0, 3)
    return (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + box(b"ftyp", b"jp2 \x00\x00\x00\x00jp2 ")
            + box(b"jp2h", ihdr) + box(b"jp2c", siz + b"\x00" * 64))


def avif(width: int, height: int) -> bytes:
    """An AVIF (ISO base media) whose ispe property claims width x height."""
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body
    ispe = box(b"ispe", b"\x00\x00\x00\x00" + struct.pack(">II", width, height))
    meta = box(b"meta", b"\x00\x00\x00\x00" + box(b"iprp", box(b"ipco", ispe)))
    return box(b"ftyp", b"avif\x00\x00\x00\x00avifmif1") + meta + b"\x00" * 64


BOMBS = {
    "tiff_le": lambda w, h: tiff(w, h, "<"), "tiff_be": lambda w, h: tiff(w, h, ">"),
    "bigtiff": lambda w, h: tiff(w, h, "<", big=True), "hdr": hdr, "ppm": pnm,
    "pgm": lambda w, h: pnm(w, h, b"P5"), "pbm": lambda w, h: pnm(w, h, b"P4"), "pfm": lambda w, h: pnm(w, h, b"PF"),
    "pam": pam, "sun": sun, "exr": exr, "jp2": jp2, "avif": avif,
}  # type: Dict[str, Callable[[int, int], bytes]]
