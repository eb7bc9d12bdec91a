"""`edgematte bench`: models x devices side by side in one run, interleaved, with ratios to the first row.

Per row: load time, first inference, latency (median/mean/min/max/percentile of synchronous inferences on a
prepared input, rounds interleaved across rows with the order rotated, so that load from other processes falls on
every row alike), async throughput with `nireq` requests, file size, resident memory after loading, and with
--data the split of preprocessing / inference / postprocessing on real images plus the quality metrics of
`edgematte eval` when the images have masks. Knobs follow OpenVINO's benchmark_app: -d, --hint, --nireq, --niter
or -t. Rows: IRs, ONNX files, zoo names, kit checkpoints (PyTorch), foreign models as PATH@SPEC, and with
--vs onnxruntime an ONNX Runtime row for every ONNX model.

Device CUDA[:N] (the reference GPU, absent from edge boxes): ONNX files run through ONNX Runtime's CUDA execution
provider (the `onnxruntime` backend), kit checkpoints through PyTorch on cuda; IRs have no CUDA row. A CUDA row that
cannot run here is reported as unavailable, with the reason, and the other rows are measured; when nothing else was
asked for, that reason is the one-line error.
"""
import csv
import json
import os
import shutil
import statistics
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DeviceError, EdgematteError, InputError
from .io import atomic_path, read_image, write_text
from .verbs import add_verb

HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


def _rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def model_file_mb(path: str) -> float:
    """Size of a model file in MB; an IR counts its .xml and .bin together."""
    p = Path(path)
    if p.suffix.lower() == ".xml" and p.with_suffix(".bin").is_file():
        return (p.stat().st_size + p.with_suffix(".bin").stat().st_size) / 1e6
    return p.stat().st_size / 1e6 if p.is_file() else 0.0


# Extra backends (--vs NAME) come from the `edgematte.backends` entry-point group, so that the edge runtime never
# imports onnxruntime or torch itself: export/ort_predictor.py registers "onnxruntime".
BACKEND_GROUP = "edgematte.backends"
_BACKENDS = {}  # type: Dict[str, Callable[..., Any]]


def register_backend(name: str, factory: Callable[..., Any]) -> None:
    """Let `--vs NAME` add rows made by factory(path, device, threads) for .onnx models."""
    _BACKENDS[name] = factory


def backend(name: str) -> Callable[..., Any]:
    """The factory of backend `name`, loading its entry point on first use; InputError when unavailable."""
    from .cli import iter_entry_points

    points = {ep.name: ep for ep in iter_entry_points(BACKEND_GROUP)}
    if name not in _BACKENDS and name in points:
        try:
            points[name].load()()
        except ImportError as exc:
            raise InputError("--vs {}: its package is not installed ({})".format(name, exc)) from None
    if name not in _BACKENDS:
        raise InputError("--vs: unknown backend {} (installed: {})".format(name, ", ".join(sorted(points)) or "none"))
    return _BACKENDS[name]


class Row:
    """One model on one device through one backend, and what was measured of it."""

    def __init__(self, label: str, model: str, device: str, backend: str, make: Callable[[], Any]) -> None:
        self.label, self.model, self.device, self.backend = label, model, device, backend
        self.make = make
        self.predictor = None  # type: Any
        self.prepared = None  # type: Any
        self.times = []  # type: List[float]
        self.result = {"label": label, "model": model, "device": device, "backend": backend}  # type: Dict[str, Any]

    def load(self, image: np.ndarray) -> None:
        before, start = _rss_mb(), time.perf_counter()
        self.predictor = self.make()
        self.result["load_s"] = round(time.perf_counter() - start, 3)
        start = time.perf_counter()
        self.prepared = self.predictor.prepare(image)
        self.predictor.infer(self.prepared)
        self.result["first_ms"] = round((time.perf_counter() - start) * 1e3, 2)
        self.result["rss_delta_mb"] = round(_rss_mb() - before, 1)
        source = str(getattr(self.predictor, "source", "") or self.model.split("@")[0])
        self.result["size_mb"] = round(model_file_mb(source), 2) if os.path.isfile(source) else None
        card = self.predictor.card
        self.result.update({"precision": card.precision, "input_size": list(card.input_size), "task": card.task})

    def once(self) -> None:
        start = time.perf_counter()
        self.predictor.infer(self.prepared)
        self.times.append((time.perf_counter() - start) * 1e3)


def _stats(times: Sequence[float], percentile: int) -> Dict[str, float]:
    ordered = sorted(times)
    return {"median_ms": round(statistics.median(ordered), 3), "mean_ms": round(statistics.mean(ordered), 3),
            "min_ms": round(ordered[0], 3), "max_ms": round(ordered[-1], 3),
            "p{}_ms".format(percentile): round(float(np.percentile(ordered, percentile)), 3), "count": len(ordered)}


def is_cuda(device: str) -> bool:
    """CUDA or CUDA:N: a device only ONNX Runtime and PyTorch run on (never OpenVINO)."""
    name, _, index = device.strip().upper().partition(":")
    return name == "CUDA" and (not index or index.isdigit())


def _ov_config(hint: str, threads: int, precision: str = "") -> Dict[str, str]:
    config = {"PERFORMANCE_HINT": HINTS[hint]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(int(threads))
    if precision:  # else the runtime keeps the IR's own precision on CPU (f32 compute)
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


def build_rows(models: Sequence[str], devices: Sequence[str], vs: Sequence[str] = (), hint: str = "latency",
               threads: int = 0, precision: str = "") -> List[Row]:
    """The rows to measure: every MODEL on every device, plus --vs backends; PATH@SPEC is a foreign model."""
    from .foreign import ForeignPredictor, load_spec
    from .runtime import load_model

    rows = []  # type: List[Row]
    for model in models:
        path, _, spec = model.partition("@")
        suffix = Path(path).suffix.lower()
        for device in devices:
            label = "{} [{}]".format(Path(path).stem if suffix else path, device)
            if spec:
                rows.append(Row(label, model, device, "openvino", lambda p=path, s=spec, d=device: ForeignPredictor(
                    p, load_spec(s), device=d, config=_ov_config(hint, threads, precision))))
            elif suffix in (".xml", ".onnx", "") and not is_cuda(device):
                rows.append(Row(label, model, device, "openvino", lambda p=path, d=device: load_model(
                    p, device=d, config=_ov_config(hint, threads, precision))))
            elif suffix == ".onnx":  # CUDA: ONNX Runtime's CUDA execution provider, loaded by entry point
                rows.append(Row(label + " onnxruntime", model, device, "onnxruntime",
                                lambda p=path, d=device: backend("onnxruntime")(p, d, threads)))
            elif suffix not in (".xml", ""):  # a plugin file, e.g. a kit checkpoint run by PyTorch (CPU or CUDA)
                rows.append(Row(label + " torch", model, device, "torch", lambda p=path, d=device: load_model(
                    p, device=d)))
            for name in vs:
                # kit ONNX files only: a foreign model (PATH@SPEC) is fed by its spec through OpenVINO
                if suffix == ".onnx" and not spec and not (name == "onnxruntime" and is_cuda(device)):
                    rows.append(Row("{} {}".format(label, name), model, device, name,
                                    lambda p=path, d=device, f=backend(name): f(p, d, threads)))
    if not rows:
        raise InputError("bench: nothing to measure (an IR runs on OpenVINO devices; CUDA takes .onnx files and "
                         "kit checkpoints)")
    return rows


def _data_images(data: str, subset: Any) -> List[Any]:
    """(image, mask or None) pairs of a dataset folder's `subset` (edge.datasets.Subset); a folder of images
    without masks gives (image, None) pairs, chosen the same way."""
    from .datasets import find_pairs, list_images, read_pair

    try:
        pairs = find_pairs(data)
    except InputError:
        files = list_images(data)
        if not files:
            raise InputError("{}: no images to benchmark on".format(data)) from None
        return [(read_image(str(p)), None) for p in subset.apply(files, source=data)]
    return [read_pair(p) for p in subset.apply(pairs, source=data)]


def bench(models: Sequence[str], devices: Sequence[str] = ("CPU",), vs: Sequence[str] = (), hint: str = "latency",
          nireq: int = 0, niter: int = 50, seconds: float = 0.0, data: Optional[str] = None, data_limit: int = 50,
          percentile: int = 90, threads: int = 0, warmup: int = 3, data_filter: Sequence[str] = (),
          precision: str = "", subset: Any = None) -> Dict[str, Any]:
    """Measure every row in one run (interleaved) and return {"rows": [...], "settings": {...}}.

    `subset` (edge.datasets.Subset) picks the --data pairs; without it, `data_filter` globs and `data_limit`.
    """
    from .datasets import Subset

    subset = subset if subset is not None else Subset(include=list(data_filter), limit=data_limit)
    planned = build_rows(models, devices, vs, hint, threads, precision)
    probe = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    rows, unavailable = [], []  # type: List[Row], List[Row]
    for row in planned:
        try:
            row.load(probe)
        except EdgematteError as exc:
            if not is_cuda(row.device):
                raise
            row.result["unavailable"] = str(exc)  # the reference GPU is absent here: say so, measure the rest
            unavailable.append(row)
            continue
        for _ in range(warmup):
            row.once()
        row.times.clear()
        rows.append(row)
    if not rows:
        raise DeviceError("nothing could run here: " + "; ".join(
            "{}: {}".format(r.label, r.result["unavailable"]) for r in unavailable))
    rounds, started = 0, time.perf_counter()
    while True:  # interleaved: one inference of every row per round, order rotated
        order = rows[rounds % len(rows):] + rows[:rounds % len(rows)]
        for row in order:
            row.once()
        rounds += 1
        if (seconds and time.perf_counter() - started >= seconds) or (not seconds and rounds >= niter):
            break
    pairs = _data_images(data, subset) if data else []
    for row in rows:
        row.result["latency"] = _stats(row.times, percentile)
        row.result["throughput_fps"] = _throughput(row, probe, nireq, max(8, min(64, niter)))
        if pairs:
            row.result["end_to_end"] = _end_to_end(row, pairs)
            if all(mask is not None for _, mask in pairs):
                row.result["quality"] = _quality(row, pairs)
    base = rows[0].result["latency"]["median_ms"]
    for row in rows:
        row.result["ratio_to_first"] = round(row.result["latency"]["median_ms"] / base, 3) if base else None
    return {"rows": [r.result for r in rows], "unavailable": [r.result for r in unavailable],
            "settings": {"devices": list(devices), "hint": hint, "nireq": nireq, "rounds": rounds, "warmup": warmup,
                         "percentile": percentile, "threads": threads, "data": data, "subset": subset.to_dict(),
                         "data_filter": list(subset.include),
                         "precision": precision or "model",
                         "data_images": len(pairs),
                         "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}}


def _throughput(row: Row, image: np.ndarray, nireq: int, count: int) -> float:
    """Frames per second of predict_many over `count` copies of the probe image (async where the backend is)."""
    start = time.perf_counter()
    for _ in row.predictor.predict_many((image for _ in range(count)), nireq=nireq):
        pass
    return round(count / (time.perf_counter() - start), 2)


def _end_to_end(row: Row, pairs: Sequence[Any]) -> Dict[str, float]:
    """Median ms of prepare / infer / finish and their sum over the real images."""
    parts = {"preprocess_ms": [], "inference_ms": [], "postprocess_ms": [], "total_ms": []}  # type: Dict[str, List[float]]
    for image, _ in pairs:
        t0 = time.perf_counter()
        x = row.predictor.prepare(image)
        t1 = time.perf_counter()
        raw = row.predictor.infer(x)
        t2 = time.perf_counter()
        row.predictor.finish(raw, image.shape[:2])
        t3 = time.perf_counter()
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            parts[key].append(value * 1e3)
    return {key: round(statistics.median(values), 3) for key, values in parts.items()}


def _quality(row: Row, pairs: Sequence[Any]) -> Dict[str, float]:
    """Mean IoU, boundary IoU and MAE on the images with masks (the numbers of `edgematte eval`)."""
    from .evaluate import alpha_of, score

    records = [score(alpha_of(np.asarray(row.predictor.predict(image), np.float32)), mask, False)
               for image, mask in pairs]
    return {key: round(float(np.mean([r[key] for r in records])), 4) for key in ("iou", "boundary_iou", "mae")}


# -- output --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One table column: its header, how to read it from a row, its digits, and whether the compact table has it."""

    header: str
    get: Callable[[Dict[str, Any], str], Any]
    digits: int = 2
    compact: bool = False


def _lat(key: str) -> Callable[[Dict[str, Any], str], Any]:
    return lambda r, pct: r.get("latency", {}).get(key.replace("PCT", pct))


def _part(group: str, key: str) -> Callable[[Dict[str, Any], str], Any]:
    return lambda r, pct: r.get(group, {}).get(key)


COLUMNS = (  # every column --wide shows; the compact default keeps those marked, to fit 100 columns
    Column("model", lambda r, pct: r["label"], compact=True),
    Column("backend", lambda r, pct: r["backend"]),
    Column("prec", lambda r, pct: r.get("precision"), compact=True),
    Column("MB", lambda r, pct: r.get("size_mb"), compact=True),
    Column("load s", lambda r, pct: r.get("load_s")),
    Column("first ms", lambda r, pct: r.get("first_ms")),
    Column("median ms", _lat("median_ms"), compact=True),
    Column("mean", _lat("mean_ms")),
    Column("min", _lat("min_ms")),
    Column("max", _lat("max_ms")),
    Column("PCT", _lat("PCT_ms")),
    Column("x first", lambda r, pct: r.get("ratio_to_first"), compact=True),
    Column("fps", lambda r, pct: r.get("throughput_fps"), compact=True),
    Column("pre ms", _part("end_to_end", "preprocess_ms")),
    Column("infer ms", _part("end_to_end", "inference_ms")),
    Column("post ms", _part("end_to_end", "postprocess_ms")),
    Column("e2e ms", _part("end_to_end", "total_ms"), compact=True),
    Column("IoU", _part("quality", "iou"), 4, compact=True),
    Column("BIoU", _part("quality", "boundary_iou"), 4, compact=True),
    Column("MAE", _part("quality", "mae"), 4, compact=True),
)
MIN_LABEL = 12  # the model column is shortened in the middle down to this many characters to fit the width


def table_width() -> int:
    """Columns the table may take: the terminal's width, 100 when the output is not a terminal."""
    return shutil.get_terminal_size((100, 24)).columns


def _shorten(text: str, width: int) -> str:
    """`text` cut in the middle to `width` characters ("mobilenet...[CPU]"), whole when it fits."""
    if len(text) <= width:
        return text
    head = (width - 3 + 1) // 2
    return text[:head] + "..." + text[len(text) - (width - 3 - head):]


def table(report: Dict[str, Any], wide: bool = False, width: Optional[int] = None) -> str:
    """The rows as a text table, ratios to the first row: the compact columns fitted to `width` (default: the
    terminal's, 100 off a terminal), or every column with `wide`; columns no row has are left out."""
    rows = report["rows"]
    pct = "p{}".format(report["settings"]["percentile"])
    columns = [c for c in COLUMNS if (wide or c.compact) and any(c.get(r, pct) is not None for r in rows)]
    lines = [[c.header.replace("PCT", pct) for c in columns]]
    lines += [[_fmt(c.get(r, pct), c.digits) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    limit = table_width() if width is None else width
    if not wide and sum(widths) + 2 * (len(widths) - 1) > limit:  # the model column gives way
        widths[0] = max(MIN_LABEL, len(lines[0][0]), limit - sum(widths[1:]) - 2 * (len(widths) - 1))
        for line in lines:
            line[0] = _shorten(line[0], widths[0])
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    for r in report.get("unavailable", []):
        text += textwrap.wrap("{}: unavailable: {}".format(r["label"], r["unavailable"]), width=max(40, limit),
                              subsequent_indent="  ", break_on_hyphens=False)
    return "\n".join(text)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "{:.{}f}".format(value, digits)
    return str(value)


def footer(report: Dict[str, Any], wide: bool = False) -> str:
    """The lines under the table: rounds, what `x first` means, the load average, where the other columns are."""
    settings = report["settings"]
    load = " ".join("{:.2f}".format(v) for v in settings["loadavg"]) if settings.get("loadavg") else "unknown"
    lines = ["{} interleaved rounds; x first = median latency over the first row's; load average {}".format(
        settings["rounds"], load)]
    if not wide:
        lines.append("load, first-inference, mean/min/max/p{} and pre/infer/post ms: --wide, --csv or --json".format(
            settings["percentile"]))
    return "\n".join(lines)


def write_csv(report: Dict[str, Any], path: str) -> None:
    """One flat CSV row per bench row (nested fields joined with '.')."""
    flat = []
    for row in report["rows"]:
        item = {}  # type: Dict[str, Any]
        for key, value in row.items():
            if isinstance(value, dict):
                item.update({"{}.{}".format(key, k): v for k, v in value.items()})
            elif isinstance(value, list):
                item[key] = "x".join(str(v) for v in value)
            else:
                item[key] = value
        flat.append(item)
    fields = []  # type: List[str]
    for item in flat:
        fields += [k for k in item if k not in fields]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(flat)


Rect = Tuple[int, int, int, int]  # x, y (top left), width, height


def _overlaps(a: Rect, b: Rect, gap: int = 2) -> bool:
    """Whether two boxes come closer than `gap` pixels."""
    return (a[0] < b[0] + b[2] + gap and b[0] < a[0] + a[2] + gap and a[1] < b[1] + b[3] + gap
            and b[1] < a[1] + a[3] + gap)


def _candidates(point: Tuple[int, int], size: Tuple[int, int], bounds: Rect) -> List[Rect]:
    """Label boxes around `point`, right/left/above/below at growing vertical steps, nearest first."""
    (x, y), (w, h) = point, size
    steps = range(0, bounds[3] // (h + 2) + 2)
    boxes = []
    for k in steps:
        for dy in ((0,) if k == 0 else (-k * (h + 2), k * (h + 2))):
            top = y - h // 2 + dy
            boxes += [(x + 10, top, w, h), (x - 10 - w, top, w, h), (x - w // 2, top - h // 2 - 10, w, h),
                      (x - w // 2, top + h // 2 + 10, w, h)]
    inside = [b for b in boxes if b[0] >= bounds[0] and b[1] >= bounds[1] and b[0] + b[2] <= bounds[0] + bounds[2]
              and b[1] + b[3] <= bounds[1] + bounds[3]]
    return sorted(inside, key=lambda b: (_gap((x, y), b), abs(b[1] + b[3] / 2.0 - y)))


def _gap(point: Tuple[int, int], box: Rect) -> float:
    """Distance from a point to the nearest spot of a box (0 inside it)."""
    dx = max(box[0] - point[0], 0, point[0] - box[0] - box[2])
    dy = max(box[1] - point[1], 0, point[1] - box[1] - box[3])
    return float(np.hypot(dx, dy))


LEADER_PX = 16  # a label farther than this from its point gets a line to it


def leader(point: Tuple[int, int], box: Rect) -> Optional[Tuple[Tuple[int, int], Tuple[int, int]]]:
    """The line from a point to the nearest spot of its label's box, when the box is set apart; else None."""
    near = (min(max(point[0], box[0]), box[0] + box[2]), min(max(point[1], box[1]), box[1] + box[3]))
    return (point, near) if _gap(point, box) > LEADER_PX else None


def _crosses(line: Optional[Tuple[Tuple[int, int], Tuple[int, int]]], boxes: Sequence[Rect]) -> bool:
    """Whether a leader line runs through any of `boxes` (sampled every few pixels)."""
    if line is None:
        return False
    (x0, y0), (x1, y1) = line
    steps = max(2, int(np.hypot(x1 - x0, y1 - y0) // 3))
    samples = [(x0 + (x1 - x0) * t / steps, y0 + (y1 - y0) * t / steps) for t in range(steps + 1)]
    return any(b[0] < x < b[0] + b[2] and b[1] < y < b[1] + b[3] for b in boxes for x, y in samples)


def place_labels(points: Sequence[Tuple[int, int]], sizes: Sequence[Tuple[int, int]], bounds: Rect,
                 taken: Sequence[Rect] = (), radius: int = 8) -> List[Rect]:
    """One box per label, near its point, overlapping no other label, no point and nothing in `taken` (axes,
    axis text), its leader line crossing no label, inside `bounds`; greedy, nearest free place first (only a
    canvas too full for them all lets one overlap)."""
    blocked = list(taken) + [(px - radius, py - radius, 2 * radius, 2 * radius) for px, py in points]
    placed = []  # type: List[Rect]
    for point, size in zip(points, sizes):
        options = _candidates(point, size, bounds) or [(bounds[0], bounds[1], size[0], size[1])]
        box = next((b for b in options if not any(_overlaps(b, o) for o in blocked)
                    and not _crosses(leader(point, b), placed)), options[0])
        blocked.append(box)
        placed.append(box)
    return placed


def write_plot(report: Dict[str, Any], path: str) -> List[Rect]:
    """A PNG scatter plot drawn with OpenCV: median latency (x) against IoU (y, when measured) or row index; labels
    are laid out so that none covers another or a point (a thin line leads to a label set apart). Returns their
    boxes."""
    import cv2

    rows = report["rows"]
    width, height, margin = 900, 560, 80
    canvas = np.full((height, width, 3), 255, np.uint8)
    xs = [r["latency"]["median_ms"] for r in rows]
    quality = all("quality" in r for r in rows)
    ys = [r["quality"]["iou"] for r in rows] if quality else list(range(len(rows)))
    x_lo, x_hi = 0.0, (max(xs) * 1.1) or 1.0
    y_lo, y_hi = (min(ys) - 0.05, max(ys) + 0.05) if quality else (-1, len(rows))
    to_px = lambda x, y: (int(margin + (x - x_lo) / (x_hi - x_lo) * (width - 2 * margin)),  # noqa: E731
                          int(height - margin - (y - y_lo) / ((y_hi - y_lo) or 1) * (height - 2 * margin)))
    black, font, scale = (0, 0, 0), cv2.FONT_HERSHEY_SIMPLEX, 0.4
    cv2.line(canvas, (margin, height - margin), (width - margin, height - margin), black, 1)
    cv2.line(canvas, (margin, margin), (margin, height - margin), black, 1)
    axis = [("median latency (ms), 0 .. {:.1f}".format(x_hi), (margin, height - 30), 0.5),
            ("IoU" if quality else "row", (10, margin - 20), 0.5)]
    if quality:
        axis += [("{:.2f}".format(v), (5, to_px(0, v)[1]), scale) for v in (y_lo, y_hi)]
    taken = [(margin - 1, margin, 3, height - 2 * margin), (margin, height - margin - 1, width - 2 * margin, 3)]
    for text, (x, y), size in axis:
        cv2.putText(canvas, text, (x, y), font, size, black, 1)
        (w, h), base = cv2.getTextSize(text, font, size, 1)
        taken.append((x, y - h, w, h + base))
    points = [to_px(x, y) for x, y in zip(xs, ys)]
    texts = ["{} {:.1f} ms".format(row["label"][:40], x) for x, row in zip(xs, rows)]
    extents = [cv2.getTextSize(text, font, scale, 1) for text in texts]  # ((w, h above the baseline), below)
    sizes = [(w, h + base) for (w, h), base in extents]
    boxes = place_labels(points, sizes, (2, 2, width - 4, height - 4), taken)
    for i, (point, text, box) in enumerate(zip(points, texts, boxes)):
        colour = (int(200 * (i % 3 == 0)), int(150 * (i % 3 == 1)), int(200 * (i % 3 == 2)))
        cv2.circle(canvas, point, 6, colour, -1)
        line = leader(point, box)
        if line is not None:
            cv2.line(canvas, line[0], line[1], colour, 1)
        cv2.putText(canvas, text, (box[0], box[1] + extents[i][0][1]), font, scale, colour, 1)
    ok, buffer = cv2.imencode(".png", canvas)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(buffer.tobytes())
    return boxes


def register(subparsers: Any) -> None:
    """Add the `bench` verb."""
    import argparse

    from . import options
    from .datasets import add_subset_args

    p = add_verb(subparsers, "bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="IR .xml, .onnx, zoo name, kit checkpoint (.pt, needs torch), or FOREIGN@SPEC")
    p.add_argument("-d", "--device", default="CPU",
                   help="comma-separated devices: OpenVINO's (CPU, GPU, ...) and CUDA[:N] for .onnx (ONNX Runtime "
                        "CUDA provider) and checkpoints (PyTorch) (default CPU)")
    p.add_argument("--hint", choices=sorted(HINTS), default="latency", help="OpenVINO performance hint")
    p.add_argument("--precision", choices=["f32", "bf16", "f16"], default="", help="OpenVINO inference precision "
                   "(default: the IR's own, f32 compute on CPU; bf16 is faster on AVX512-BF16/AMX CPUs)")
    p.add_argument("--nireq", type=options.nireq, default=0,
                   help="requests in flight for the throughput run, {} to {} (0: optimal)".format(*options.NIREQ_RANGE))
    group = p.add_mutually_exclusive_group()
    group.add_argument("--niter", type=options.niter, default=50,
                       help="interleaved rounds, {} to {} (default 50)".format(*options.NITER_RANGE))
    group.add_argument("-t", "--time", type=options.seconds, default=0.0, metavar="SECONDS",
                       help="run rounds for this long, {:g} to {:g} s".format(*options.TIME_RANGE))
    p.add_argument("--threads", type=options.threads, default=0, help="inference threads for every backend, {} to {} "
                   "(0: its default)".format(*options.THREADS_RANGE))
    p.add_argument("--percentile", type=options.percentile, default=90,
                   help="latency percentile to report, {} to {} (default 90)".format(*options.PERCENTILE_RANGE))
    p.add_argument("--data", metavar="DIR", help="real images (with masks: quality too) for the end-to-end split")
    add_subset_args(p, what="--data pairs", default_limit=50, aliases=("--data-filter", "--data-limit"))
    p.add_argument("--wide", action="store_true", help="print every column (default: the main ones, fitted to the "
                                                       "terminal, 100 columns off one; --csv/--json have them all)")
    p.add_argument("--vs", default="", metavar="LIST", help="extra backends: onnxruntime (for .onnx models)")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one CSV row per model and device")
    p.add_argument("--plot", metavar="FILE.png", help="draw latency against quality (or per row) as a PNG")
    p.add_argument("--video", metavar="CLIP", help="instead: inference-only and end-to-end fps on this video for "
                                                  "mask, blur and replace, with and without smoothing")
    p.add_argument("--video-frames", type=options.frames, default=150, metavar="N",
                   help="frames of --video used, {} to {} (default 150)".format(*options.FRAMES_RANGE))
    p.set_defaults(func=run)


def run(args: Any) -> int:
    """Handler of `edgematte bench`."""
    from .datasets import subset_from_args

    if getattr(args, "video", None):
        from .video_bench import run_video

        return run_video(args)
    if args.niter < 1 or args.time < 0:
        raise InputError("--niter must be at least 1 and --time positive")
    vs = [v.strip().lower() for v in args.vs.split(",") if v.strip()]
    for name in vs:
        backend(name)  # an unknown or uninstalled backend fails before anything is measured
    report = bench(args.models, [d.strip() for d in args.device.split(",") if d.strip()], vs, args.hint, args.nireq,
                   args.niter, args.time, args.data, percentile=args.percentile, threads=args.threads,
                   precision=args.precision, subset=subset_from_args(args))
    print(table(report, wide=args.wide))
    print(footer(report, wide=args.wide))
    if args.json:
        write_text(args.json, json.dumps(report, indent=1) + "\n")
    if args.csv:
        write_csv(report, args.csv)
    if args.plot:
        write_plot(report, args.plot)
    return 0


__all__ = ["bench", "build_rows", "table", "footer", "COLUMNS", "write_csv", "write_plot", "place_labels",
           "register_backend", "backend", "register"]
