"""Dataset layouts on disk (folder pairs, DUTS, P3M-10k, PPM-100, AISegment) read as (image, alpha) pairs; torch-free."""
import argparse
import fnmatch
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

import cv2
import numpy as np

from .errors import InputError
from .io import IMAGE_SUFFIXES  # the one suffix list, shared with the batch verbs

log = logging.getLogger(__name__)

IMAGE_EXTS = IMAGE_SUFFIXES
MASK_EXTS = IMAGE_SUFFIXES


@dataclass
class Pair:
    """One sample: an image and where its alpha comes from (a mask file, or the alpha channel of an RGBA file)."""

    image: Path
    mask: Optional[Path] = None
    # True: the alpha is the alpha channel of an RGBA PNG — of `mask` when set, else of `image` (AISegment cutouts).
    alpha_in_image: bool = False
    stem: str = ""

    def __post_init__(self) -> None:
        self.image = Path(self.image)
        if self.mask is not None:
            self.mask = Path(self.mask)
        if not self.stem:
            self.stem = self.image.stem


@dataclass
class Scan:
    """What a layout scan found: the pairs, and the stems that had no partner (counted, not fatal)."""

    layout: str
    pairs: List[Pair] = field(default_factory=list)
    unmatched_images: List[str] = field(default_factory=list)
    unmatched_masks: List[str] = field(default_factory=list)


# -- helpers ------------------------------------------------------------------------------------------
def _files(folder: Path, exts: Sequence[str], recursive: bool = False) -> List[Path]:
    """Files of `folder` with one of `exts` (case-insensitive), sorted; hidden files skipped."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))


def list_images(folder, recursive: bool = True) -> List[Path]:
    """The image files under `folder` (every IMAGE_EXTS suffix, any case), sorted, hidden files skipped: the one
    listing behind calibration, background, benchmark and parity folders."""
    root = Path(folder)
    return _files(root, IMAGE_EXTS, recursive) if root.is_dir() else []


def _match(images: Path, masks: Path, scan: Scan) -> None:
    """Pair files of two folders by stem into `scan`, counting stems without a partner."""
    mask_by_stem = {}  # type: Dict[str, Path]
    for path in _files(masks, MASK_EXTS):
        # Prefer .png when a stem has several mask files.
        if path.stem not in mask_by_stem or path.suffix.lower() == ".png":
            mask_by_stem[path.stem] = path
    used = set()
    image_files = _files(images, IMAGE_EXTS)
    _refuse_shared_stems(images, image_files, mask_by_stem)
    for path in image_files:
        mask = mask_by_stem.get(path.stem)
        if mask is None:
            scan.unmatched_images.append(str(path))
            continue
        used.add(path.stem)
        scan.pairs.append(Pair(image=path, mask=mask, stem=path.stem))
    scan.unmatched_masks.extend(str(p) for s, p in sorted(mask_by_stem.items()) if s not in used)


def _refuse_shared_stems(folder: Path, images: Sequence[Path], mask_by_stem: Dict[str, Path]) -> None:
    """InputError when several images share a stem that has a mask (a.jpg and a.png would both be scored against
    masks/a.png, one of them wrongly)."""
    by_stem = {}  # type: Dict[str, List[Path]]
    for path in images:
        by_stem.setdefault(path.stem, []).append(path)
    shared = sorted(stem for stem, paths in by_stem.items() if len(paths) > 1 and stem in mask_by_stem)
    if shared:
        first = shared[0]
        raise InputError("{}: {} images share the stem {!r} ({}) and would be paired with one mask {}; rename or "
                         "remove all but one ({} stem(s) like this)".format(
                             folder, len(by_stem[first]), first, ", ".join(p.name for p in by_stem[first]),
                             mask_by_stem[first], len(shared)))


def _first_dir(root: Path, names: Sequence[str]) -> Optional[Path]:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


# -- layouts ------------------------------------------------------------------------------------------
@dataclass
class Layout:
    """A dataset layout: how to recognise it and how to list its pairs for a split."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    scan: Callable[[Path, Optional[str]], Scan]


def _pairs_detect(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "masks").is_dir()


def _pairs_scan(root: Path, split: Optional[str]) -> Scan:
    scan = Scan("pairs")
    _match(root / "images", root / "masks", scan)
    return scan


_DUTS_SPLITS = {"train": ("TR",), "tr": ("TR",), "test": ("TE",), "te": ("TE",), "val": ("TE",)}


def _duts_parts(root: Path) -> List[Tuple[str, Path]]:
    """(part, folder holding DUTS-<part>-Image/-Mask) for each DUTS part found at root or one level down."""
    found = []
    for part in ("TR", "TE"):
        for base in (root, root / "DUTS-{}".format(part)):
            if (base / "DUTS-{}-Image".format(part)).is_dir() and (base / "DUTS-{}-Mask".format(part)).is_dir():
                found.append((part, base))
                break
    return found


def _duts_detect(root: Path) -> bool:
    return bool(_duts_parts(root))


def _duts_scan(root: Path, split: Optional[str]) -> Scan:
    parts = _duts_parts(root)
    if split is not None:
        wanted = _DUTS_SPLITS.get(split.lower())
        if wanted is None:
            raise InputError("{}: unknown DUTS split {!r} (expected train or test)".format(root, split))
        parts = [(p, b) for p, b in parts if p in wanted]
        if not parts:
            raise InputError("{}: DUTS split {!r} is not present".format(root, split))
    scan = Scan("duts")
    for part, base in parts:
        _match(base / "DUTS-{}-Image".format(part), base / "DUTS-{}-Mask".format(part), scan)
    return scan


_P3M_VAL = {"val-p": ("P3M-500-P",), "val-np": ("P3M-500-NP",), "val": ("P3M-500-P", "P3M-500-NP"),
            "p3m-500-p": ("P3M-500-P",), "p3m-500-np": ("P3M-500-NP",)}


def _p3m_detect(root: Path) -> bool:
    return (root / "train" / "mask").is_dir() and _first_dir(root / "train", ("blurred_image", "original_image")) is not None \
        or (root / "validation" / "P3M-500-P").is_dir() or (root / "validation" / "P3M-500-NP").is_dir()


def _p3m_scan(root: Path, split: Optional[str]) -> Scan:
    key = (split or "train").lower()
    if key == "train":
        folders = [root / "train"]
    elif key in _P3M_VAL:
        folders = [root / "validation" / name for name in _P3M_VAL[key]]
    else:
        raise InputError("{}: unknown P3M-10k split {!r} (expected train, val, val-p or val-np)".format(root, split))
    scan = Scan("p3m")
    for folder in folders:
        images = _first_dir(folder, ("blurred_image", "original_image"))
        if images is None or not (folder / "mask").is_dir():
            raise InputError("{}: P3M-10k split {!r} lacks {}/<blurred_image|original_image> + mask".format(
                root, split or "train", folder.relative_to(root)))
        _match(images, folder / "mask", scan)
    return scan


def _ppm_detect(root: Path) -> bool:
    return (root / "image").is_dir() and (root / "matte").is_dir()


def _ppm_scan(root: Path, split: Optional[str]) -> Scan:
    scan = Scan("ppm")
    _match(root / "image", root / "matte", scan)
    return scan


def _has_alpha(path: Path) -> bool:
    """Whether an image file has an alpha channel (reads the file, bounded as every image read is)."""
    from .io import read_stored

    try:
        data = read_stored(path)
    except InputError:
        return False
    return data.ndim == 3 and data.shape[2] == 4


def _aisegment_cutouts(root: Path) -> Optional[Path]:
    """The folder holding AISegment RGBA cutouts: root/matting, root itself when named matting, or root with RGBA PNGs."""
    if (root / "matting").is_dir():
        return root / "matting"
    pngs = [p for p in root.rglob("*.png")][:3] if root.is_dir() else []
    if pngs and all(_has_alpha(p) for p in pngs):
        return root
    return None


def _aisegment_detect(root: Path) -> bool:
    return _aisegment_cutouts(root) is not None


def _aisegment_scan(root: Path, split: Optional[str]) -> Scan:
    cutouts = _aisegment_cutouts(root)
    scan = Scan("aisegment")
    if cutouts is None:
        return scan
    # AISegment ships the original photos next to the cutouts (clip_img/ mirrors matting/); use them when present,
    # since the cutouts' colour under alpha=0 is undefined.
    originals = {}  # type: Dict[str, Path]
    clip = cutouts.parent / "clip_img"
    if cutouts.name == "matting" and clip.is_dir():
        originals = {p.stem: p for p in _files(clip, IMAGE_EXTS, recursive=True)}
    for png in _files(cutouts, (".png",), recursive=True):
        original = originals.get(png.stem)
        if original is not None:
            scan.pairs.append(Pair(image=original, mask=png, alpha_in_image=True, stem=png.stem))
        else:
            scan.pairs.append(Pair(image=png, mask=None, alpha_in_image=True, stem=png.stem))
    return scan


# Detection order: specific layouts first, the generic RGBA-cutout check last (it reads files).
LAYOUTS = {
    "duts": Layout("duts", "DUTS (DUTS-TR-Image + DUTS-TR-Mask, or DUTS-TE-*)", _duts_detect, _duts_scan),
    "p3m": Layout("p3m", "P3M-10k (train/blurred_image + train/mask, validation/P3M-500-P|NP)", _p3m_detect, _p3m_scan),
    "ppm": Layout("ppm", "PPM-100 (image/ + matte/)", _ppm_detect, _ppm_scan),
    "pairs": Layout("pairs", "folder pairs (images/ + masks/ with matching stems)", _pairs_detect, _pairs_scan),
    "aisegment": Layout("aisegment", "AISegment matting (matting/**.png RGBA cutouts)", _aisegment_detect,
                        _aisegment_scan),
}  # type: Dict[str, Layout]


def _expected() -> str:
    return "; ".join(layout.description for layout in LAYOUTS.values())


def detect_layout(root) -> str:
    """The name of the layout `root` follows; InputError listing the expected layouts when it follows none."""
    path = Path(root)
    if not path.is_dir():
        raise InputError("{}: not a folder (expected a dataset folder: {})".format(path, _expected()))
    for name, layout in LAYOUTS.items():
        if layout.detect(path):
            return name
    raise InputError("{}: no known dataset layout (expected {})".format(path, _expected()))


def scan_pairs(root, split: Optional[str] = None) -> Scan:
    """Scan `root` (layout detected) into pairs plus the stems left without a partner."""
    path = Path(root)
    scan = LAYOUTS[detect_layout(path)].scan(path, split)
    if scan.unmatched_images or scan.unmatched_masks:
        log.warning("%s: %d images without a mask and %d masks without an image were skipped", path,
                    len(scan.unmatched_images), len(scan.unmatched_masks))
    return scan


def find_pairs(root, split: Optional[str] = None) -> List[Pair]:
    """The (image, mask) pairs of a dataset folder in a stable order; unmatched stems are logged and skipped."""
    scan = scan_pairs(root, split)
    if not scan.pairs:
        raise InputError("{}: {} layout but no image/mask pairs found".format(root, scan.layout))
    return scan.pairs


def _names(item: Union[Pair, Path]) -> Tuple[str, str]:
    """(file name, stem) a glob is matched against: a Pair's image, or an image path."""
    if isinstance(item, Pair):
        return item.image.name, item.stem
    path = Path(item)
    return path.name, path.stem


def _matches(item: Union[Pair, Path], patterns: Sequence[str]) -> bool:
    name, stem = _names(item)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(stem, p) for p in patterns)


def filter_pairs(pairs: Sequence[Pair], include: Sequence[str] = (), exclude: Sequence[str] = (),
                 source: str = "dataset") -> List[Pair]:
    """Pairs whose image name or stem matches an `include` glob (all when none) and no `exclude` glob, e.g.
    exclude=["vikram_*"] holds a subject out of training; InputError naming `source` when nothing is left."""
    kept = [p for p in pairs if (not include or _matches(p, include)) and not _matches(p, exclude)]
    if pairs and not kept:
        raise InputError("{}: no pairs left after --include {} / --exclude {}".format(
            source, " ".join(include) or "-", " ".join(exclude) or "-"))
    return kept


# -- subsets: one spelling for every verb that reads a dataset -----------------------------------------
Item = TypeVar("Item", Pair, Path)


@dataclass
class Subset:
    """Which pairs a verb uses: those matching an --include glob (all when none) and no --exclude glob, sorted by
    stem, then the first --limit of them (all when None)."""

    include: List[str] = field(default_factory=list)
    exclude: List[str] = field(default_factory=list)
    limit: Optional[int] = None

    def apply(self, items: Sequence[Item], source: str = "dataset") -> List[Item]:
        """The chosen Pairs (or image Paths); InputError naming `source` and the globs when none is left."""
        kept = [i for i in items if (not self.include or _matches(i, self.include)) and not _matches(i, self.exclude)]
        kept.sort(key=lambda i: (_names(i)[1], str(i.image if isinstance(i, Pair) else i)))
        if items and not kept:
            raise InputError("{}: no pairs match {} (of {})".format(source, self.describe(), len(items)))
        return kept[:self.limit] if self.limit else kept

    def describe(self) -> str:
        """The subset as its command-line flags, e.g. "--include 'vikram_*' --limit 20"."""
        flags = ["--include {!r}".format(g) for g in self.include] + ["--exclude {!r}".format(g) for g in self.exclude]
        if self.limit:
            flags.append("--limit {}".format(self.limit))
        return " ".join(flags) or "(everything)"

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able form, as reports record it."""
        return asdict(self)


def positive_int(text: str) -> int:
    """argparse type of --limit: an integer from 1 up (edge.options.COUNT_RANGE)."""
    from .options import count

    return count(text)


# Old spellings of the subset flags, still accepted (hidden from --help, a warning when used): flag -> (dest, nargs)
DEPRECATED_SUBSET_FLAGS = {
    "--filter": ("include", None),  # eval: one glob
    "--data-filter": ("include", "+"),  # bench: globs
    "--val-filter": ("include", "+"),  # ship: globs
    "--data-limit": ("limit", None),  # bench
}  # type: Dict[str, Tuple[str, Optional[str]]]
_NEW_FLAG = {"include": "--include GLOB", "limit": "--limit N"}


class _DeprecatedFlag(argparse.Action):
    """An old subset flag: warns once on stderr, then stores like its new spelling."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        print("edgematte: warning: {} is deprecated; use {}".format(option_string, _NEW_FLAG[self.dest]),
              file=sys.stderr)
        if self.dest == "limit":
            setattr(namespace, "limit", values)
            return
        globs = list(getattr(namespace, self.dest, None) or [])
        setattr(namespace, self.dest, globs + (list(values) if isinstance(values, list) else [values]))


def add_subset_args(parser: argparse.ArgumentParser, what: str = "pairs", default_limit: Optional[int] = None,
                    aliases: Sequence[str] = ()) -> None:
    """Register --include GLOB, --exclude GLOB (repeatable) and --limit N, plus the old spellings in `aliases`
    (keys of DEPRECATED_SUBSET_FLAGS) as hidden flags; read them back with subset_from_args."""
    parser.add_argument("--include", action="append", default=None, metavar="GLOB",
                        help="only {} whose image name or stem matches GLOB, e.g. 'vikram_*' (repeatable)".format(what))
    parser.add_argument("--exclude", action="append", default=None, metavar="GLOB",
                        help="leave out {} whose image name or stem matches GLOB (repeatable)".format(what))
    parser.add_argument("--limit", type=positive_int, default=default_limit, metavar="N",
                        help="only the first N {} by name, after --include/--exclude (default: {})".format(
                            what, default_limit or "all"))
    for flag in aliases:
        dest, nargs = DEPRECATED_SUBSET_FLAGS[flag]
        parser.add_argument(flag, dest=dest, nargs=nargs, action=_DeprecatedFlag, help=argparse.SUPPRESS,
                            default=argparse.SUPPRESS, type=positive_int if dest == "limit" else None)


def subset_from_args(args: argparse.Namespace) -> Subset:
    """The Subset that add_subset_args' flags describe."""
    return Subset(include=list(getattr(args, "include", None) or []),
                  exclude=list(getattr(args, "exclude", None) or []), limit=getattr(args, "limit", None))


# -- reading ------------------------------------------------------------------------------------------
try:  # the edge image reader (EXIF, bit depth, channels, clear errors) when present
    from .io import read_image as _read_image, read_mask as _read_mask  # type: ignore
except ImportError:  # pragma: no cover - edge/io.py not there yet
    _read_image = None
    _read_mask = None


def _imread(path: Path) -> np.ndarray:
    """The image as stored, through the edge reader's bounds (size from the header, file size, special files)."""
    from .io import read_stored

    return read_stored(path)


def _to_unit(data: np.ndarray) -> np.ndarray:
    """Integer or float pixels to float32 in [0,1]."""
    if data.dtype == np.uint8:
        return data.astype(np.float32) / 255.0
    if data.dtype == np.uint16:
        return data.astype(np.float32) / 65535.0
    return np.clip(data.astype(np.float32), 0.0, 1.0)


def read_bgr(path: Path) -> np.ndarray:
    """BGR uint8 HxWx3 of an image file."""
    if _read_image is not None:
        return _read_image(path)
    data = _imread(path)
    if data.dtype == np.uint16:
        data = (data >> 8).astype(np.uint8)
    if data.ndim == 2:
        data = cv2.cvtColor(data, cv2.COLOR_GRAY2BGR)
    elif data.shape[2] == 4:
        data = cv2.cvtColor(data, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(data.astype(np.uint8))


def read_alpha_channel(path: Path) -> np.ndarray:
    """The alpha channel of an RGBA file as float32 HxW in [0,1]; InputError when it has none."""
    data = _imread(path)
    if data.ndim != 3 or data.shape[2] != 4:
        raise InputError("{}: expected an RGBA image whose alpha is the matte".format(path))
    return _to_unit(data[..., 3])


def read_soft_mask(path: Path) -> np.ndarray:
    """A mask file as float32 HxW in [0,1] (soft values kept; RGBA masks use their alpha channel)."""
    if _read_mask is not None:
        return _read_mask(path)
    data = _imread(path)
    if data.ndim == 3 and data.shape[2] == 4:
        return _to_unit(data[..., 3])
    if data.ndim == 3:
        data = data[..., 0]
    return _to_unit(data)


def read_pair(pair: Pair) -> Tuple[np.ndarray, np.ndarray]:
    """(BGR uint8 HxWx3, alpha float32 HxW in [0,1]) of a pair; InputError when their sizes differ."""
    image = read_bgr(pair.image)
    if pair.alpha_in_image:
        alpha = read_alpha_channel(pair.mask if pair.mask is not None else pair.image)
    elif pair.mask is not None:
        alpha = read_soft_mask(pair.mask)
    else:
        raise InputError("{}: no mask and no alpha channel for this image".format(pair.image))
    if alpha.shape != image.shape[:2]:
        raise InputError("{}: mask size {}x{} differs from image size {}x{} ({})".format(
            pair.mask or pair.image, alpha.shape[1], alpha.shape[0], image.shape[1], image.shape[0], pair.image))
    return image, alpha.astype(np.float32)
