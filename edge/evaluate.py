"""Score a predictor on a dataset: per-image IoU / boundary IoU / MAE (+ matting errors on soft GT), SOD metrics over the set."""
import argparse
import collections
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Deque, Dict, Iterator, List, Optional, Sequence

import numpy as np

from . import metrics
from .errors import InputError, ModelFileError
from .verbs import add_verb

SOFT_FRACTION = 0.001  # GT is a soft matte when more than 0.1% of its pixels lie strictly between 0 and 1
MATTING_KEYS = ("mse", "mad", "sad", "grad", "conn")
MASK_KEYS = ("iou", "boundary_iou", "mae")
REPORT_FORMAT = 1


def is_soft(alpha: np.ndarray, fraction: float = SOFT_FRACTION) -> bool:
    """Whether a ground truth is a soft matte (more than `fraction` of pixels strictly inside (0,1)) rather than a mask."""
    alpha = np.asarray(alpha)
    if alpha.dtype == np.uint8:
        inside = (alpha > 0) & (alpha < 255)
    else:
        inside = (alpha > 0) & (alpha < 1)
    return bool(np.count_nonzero(inside) > fraction * alpha.size)


def alpha_of(prediction: np.ndarray) -> np.ndarray:
    """The foreground alpha of a prediction: alpha/saliency maps as they are; trimap probabilities as P(fg) + P(unknown)/2."""
    if prediction.ndim == 3 and prediction.shape[2] == 3:
        return prediction[..., 2] + 0.5 * prediction[..., 1]
    return prediction


@dataclass
class EvalReport:
    """Per-image records and the set's summary; JSON-able, printable as a table."""

    model: str
    data: str
    records: List[Dict[str, Any]] = field(default_factory=list)
    summary: Dict[str, Any] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)
    format: int = REPORT_FORMAT

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    def to_json(self) -> str:
        """JSON text of the report."""
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "EvalReport":
        """Rebuild a report from `to_dict` output."""
        return cls(**data)

    def write_json(self, path: str) -> None:
        """Write the report (per-image records + summary) as JSON, atomically."""
        from .io import write_text

        write_text(path, self.to_json())

    def table(self) -> str:
        """The summary as a one-row text table."""
        return summary_table([self])


def summarise(records: Sequence[Dict[str, Any]], sod: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Means of the per-image metrics (matting means over the soft-GT images only) plus the set's SOD metrics."""
    summary = {"images": len(records)}  # type: Dict[str, Any]
    summary["mean"] = {k: float(np.mean([r[k] for r in records])) for k in MASK_KEYS} if records else {}
    soft = [r for r in records if r.get("soft")]
    summary["soft_images"] = len(soft)
    summary["matting"] = {k: float(np.mean([r[k] for r in soft])) for k in MATTING_KEYS} if soft else {}
    summary["sod"] = dict(sod or {})
    return summary


def score(pred: np.ndarray, gt: np.ndarray, soft: bool) -> Dict[str, Any]:
    """Per-image metrics of one prediction against its ground truth (both HxW in [0,1])."""
    record = {"iou": metrics.iou(pred, gt), "boundary_iou": metrics.boundary_iou(pred, gt),
              "mae": metrics.mae(pred, gt), "soft": bool(soft)}  # type: Dict[str, Any]
    if soft:
        for key in MATTING_KEYS:
            record[key] = getattr(metrics, key)(pred, gt)
    return record


def evaluate(predictor: Any, pairs: Sequence[Any], *, progress: Optional[bool] = None,
             soft_gt: Optional[bool] = None, sod: bool = True, data: str = "", nireq: int = 0,
             post_process: bool = False, refine: Optional[str] = None) -> EvalReport:
    """Run `predictor` on dataset pairs (edgematte.edge.datasets.Pair) and score every image.

    soft_gt: None detects per image (see `is_soft`), True/False forces the matting metrics on/off.
    sod: also accumulate the SOD metrics over the set (needs pysodmetrics, the `eval` extra).
    progress: None auto (a bar on a terminal, periodic lines elsewhere), True forced, False off.
    post_process: score the cleaned masks of `--post-process` (edge.postprocess) instead of the raw ones.
    refine: score the alphas refined by alpha matting ("cf" or "knn", edge.refine); meta gets its ms per image.
    """
    from .datasets import read_pair
    from .postprocess import post_process as clean
    from .progress import progress_iter

    pairs = list(pairs)
    if not pairs:
        raise InputError("{}: no image/mask pairs to evaluate".format(data or "dataset"))
    accumulator = metrics.SODMetrics() if sod else None
    pending = collections.deque()  # type: Deque[Any]
    refined = None
    if refine:
        from .refine import refiner

        refined = refiner(refine)
    refine_ms = []  # type: List[float]

    def images() -> Iterator[np.ndarray]:
        for pair in pairs:
            image, alpha = read_pair(pair)
            pending.append((pair, alpha, image if refined is not None else None))
            yield image

    records = []  # type: List[Dict[str, Any]]
    predictions = predictor.predict_many(images(), nireq=nireq)
    for prediction in progress_iter(predictions, len(pairs), "eval", "images", progress):
        pair, gt, image = pending.popleft()
        pred = alpha_of(np.asarray(prediction, dtype=np.float32))
        if post_process:
            pred = clean(pred)
        if refined is not None:
            started = time.perf_counter()
            pred = refined(image, pred)
            refine_ms.append((time.perf_counter() - started) * 1000.0)
        if pred.shape != gt.shape:
            raise InputError("{}: prediction {}x{} differs from the mask {}x{}".format(
                pair.image, pred.shape[1], pred.shape[0], gt.shape[1], gt.shape[0]))
        soft = is_soft(gt) if soft_gt is None else bool(soft_gt)
        record = {"stem": pair.stem}  # type: Dict[str, Any]
        record.update(score(pred, gt, soft))
        records.append(record)
        if accumulator is not None:
            accumulator.step(pred, gt)
    card = getattr(predictor, "card", None)
    return EvalReport(
        model=getattr(card, "name", type(predictor).__name__),
        data=str(data),
        records=records,
        summary=summarise(records, accumulator.results() if accumulator is not None else None),
        meta={"task": getattr(card, "task", None), "soft_gt": "auto" if soft_gt is None else bool(soft_gt),
              "soft_fraction": SOFT_FRACTION, "post_process": bool(post_process), "refine": refine,
              "refine_ms_median": float(np.median(refine_ms)) if refine_ms else None},
    )


# -- printing ----------------------------------------------------------------------------------
_COLUMNS = (  # (header, getter, format)
    ("IoU", lambda s: s["mean"].get("iou"), "{:.4f}"),
    ("BIoU", lambda s: s["mean"].get("boundary_iou"), "{:.4f}"),
    ("MAE", lambda s: s["mean"].get("mae"), "{:.4f}"),
    ("maxF", lambda s: s["sod"].get("maxF"), "{:.4f}"),
    ("meanF", lambda s: s["sod"].get("meanF"), "{:.4f}"),
    ("S", lambda s: s["sod"].get("S"), "{:.4f}"),
    ("maxE", lambda s: s["sod"].get("maxE"), "{:.4f}"),
    ("meanE", lambda s: s["sod"].get("meanE"), "{:.4f}"),
    ("SAD", lambda s: s["matting"].get("sad"), "{:.3f}"),
    ("MSE", lambda s: s["matting"].get("mse"), "{:.5f}"),
    ("Grad", lambda s: s["matting"].get("grad"), "{:.3f}"),
    ("Conn", lambda s: s["matting"].get("conn"), "{:.3f}"),
)


def summary_table(reports: Sequence[EvalReport]) -> str:
    """Reports side by side, one row each; columns no report has are left out (SAD/MSE/Grad/Conn: soft-GT images)."""
    columns = [c for c in _COLUMNS if any(c[1](r.summary) is not None for r in reports)]
    header = ["model", "images", "soft"] + [c[0] for c in columns]
    rows = [header]
    for report in reports:
        s = report.summary
        cells = [report.model, str(s.get("images", 0)), str(s.get("soft_images", 0))]
        for _, get, fmt in columns:
            value = get(s)
            cells.append("-" if value is None else fmt.format(value))
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- the `edgematte eval` verb ---------------------------------------------------------------------
def register(subparsers: Any) -> None:
    """Add the `eval` verb."""
    from .datasets import add_subset_args
    from .progress import add_progress_args
    parser = add_verb(subparsers, "eval",
                      description="Score a model on a dataset folder: per-image IoU, boundary IoU and MAE (+ "
                                  "SAD/MSE/Grad/Conn when the ground truth is a soft matte), and the SOD metrics "
                                  "(max/mean F, S, max/mean E) over the set.")
    parser.add_argument("model", help="IR .xml, .onnx, kit checkpoint or shipped model name; with --spec any "
                                      "ONNX/TFLite/IR file OpenVINO reads")
    parser.add_argument("data", help="dataset folder (images/+masks/ pairs, DUTS, P3M-10k, PPM-100, AISegment)")
    parser.add_argument("--spec", help="preprocessing spec (JSON path or shipped name, e.g. mediapipe_selfie) "
                                       "to run MODEL as a foreign model")
    parser.add_argument("--json", metavar="FILE", help="write per-image records and the summary to this JSON file")
    parser.add_argument("-d", "--device", default="CPU", help="OpenVINO device (default CPU)")
    parser.add_argument("--split", help="dataset split where the layout has several (e.g. test, val-p)")
    add_subset_args(parser, aliases=("--filter",))
    parser.add_argument("--soft-gt", choices=("auto", "yes", "no"), default="auto",
                        help="compute the matting errors: auto (when the GT is a soft matte), always, or never")
    parser.add_argument("--no-sod", action="store_true", help="skip the SOD metrics (no pysodmetrics needed)")
    parser.add_argument("-ppm", "--post-process", action="store_true",
                        help="score the masks cleaned as --post-process of mask/cutout/blur/replace leaves them "
                             "(haze and small blobs dropped, small holes filled, a soft edge band kept): run with "
                             "and without to see whether it helps on your data")
    from .refine import HELP as REFINE_HELP, METHODS as REFINE_METHODS

    parser.add_argument("--refine", choices=REFINE_METHODS, default=None,
                        help="score the alphas refined as --refine of the effect verbs leaves them ({}); the "
                             "summary gives its median ms per image".format(REFINE_HELP.split("; ")[0]))
    from .options import frames as frame_count

    parser.add_argument("--flicker", type=frame_count, nargs="?", const=250, default=0, metavar="FRAMES",
                        help="instead: temporal flicker on a synthetic pan+zoom clip made from each image and mask "
                             "(FRAMES per clip, default 250 = 10 s), with and without smoothing, against the ground "
                             "truth's own (edge/clip.py)")
    add_progress_args(parser)
    parser.set_defaults(func=run_eval)


def select_pairs(pairs: Sequence[Any], pattern: Optional[str] = None, limit: Optional[int] = None) -> List[Any]:
    """Pairs whose name or stem matches the glob `pattern` (all when None), the first `limit` of them by stem; an
    empty list when none match (the verbs use edge.datasets.Subset, which says so)."""
    from .datasets import Subset

    try:
        return Subset(include=[pattern] if pattern else [], limit=limit).apply(pairs)
    except InputError:
        return []


def load_predictor(model: str, spec: Optional[str] = None, device: str = "CPU") -> Any:
    """A Predictor for MODEL: a ForeignPredictor when a spec is given, else the edge runtime's loader."""
    if spec:
        from .foreign import ForeignPredictor, load_spec

        return ForeignPredictor(model, load_spec(spec), device=device)
    from .foreign import shipped_specs
    from .runtime import load_model

    try:
        return load_model(model, device=device)
    except ModelFileError as exc:  # a foreign model needs a spec: say so
        raise ModelFileError("{} (a model from elsewhere? run it with --spec SPEC.json or a shipped spec: {})".format(
            exc, ", ".join(shipped_specs()))) from None


def run_eval(args: argparse.Namespace) -> int:
    """Handler of `edgematte eval`."""
    from .datasets import find_pairs, subset_from_args
    from .outputs import check_output_file

    if args.json:  # before the evaluation: a bad path must not throw away what it measured
        check_output_file(args.json, "--json")
    subset = subset_from_args(args)
    pairs = subset.apply(find_pairs(args.data, args.split), source=str(args.data))
    predictor = load_predictor(args.model, args.spec, args.device)
    if args.flicker:
        from .clip import flicker_report, flicker_table

        flicker = flicker_report(predictor, pairs, frames=args.flicker, progress=args.progress)
        print(flicker_table(flicker))
        if args.json:
            from .io import write_text

            write_text(args.json, json.dumps(flicker, indent=1) + "\n")
            print("wrote {}".format(args.json))
        return 0
    soft = {"auto": None, "yes": True, "no": False}[args.soft_gt]
    report = evaluate(predictor, pairs, progress=args.progress, soft_gt=soft, sod=not args.no_sod,
                      data=str(args.data), post_process=args.post_process, refine=args.refine)
    report.meta.update({"model_path": str(args.model), "spec": args.spec, "device": args.device,
                        "split": args.split, "subset": subset.to_dict(),
                        "filter": " ".join(subset.include) or None, "limit": subset.limit})
    print(report.table())
    if report.meta.get("refine_ms_median") is not None:
        print("refine {}: median {:.0f} ms per image".format(report.meta["refine"], report.meta["refine_ms_median"]))
    if args.json:
        report.write_json(args.json)
        print("wrote {}".format(args.json))
    return 0


__all__ = ["EvalReport", "evaluate", "summarise", "score", "summary_table", "is_soft", "alpha_of", "register",
           "select_pairs", "load_predictor"]
