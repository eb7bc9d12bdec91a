"""The pipeline's report: every stage's IR measured side by side (size, params, FLOPs, latency, quality) and compared
with the unpruned FP32 IR, written as report.json, report.md and report.png. Rows whose IR failed export parity (or
was not made because its source failed) are listed as failed, not measured; the user's budgets are checked when set."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from edgematte.edge.bench import bench, model_file_mb, write_plot
from edgematte.edge.datasets import find_pairs
from edgematte.edge.evaluate import evaluate
from edgematte.edge.io import write_text
from edgematte.edge.runtime import load_model

# (stage key in pipeline.json, precision, label); rows whose stage is absent are left out
ROWS = (
    ("base", "fp32", "unpruned FP32"),
    ("base", "fp16", "unpruned FP16"),
    ("base_int8", "int8", "unpruned INT8"),
    ("pruned_raw", "fp32", "pruned FP32, before fine-tune"),
    ("pruned", "fp32", "pruned FP32"),
    ("pruned", "fp16", "pruned FP16"),
    ("pruned_int8", "int8", "pruned INT8"),
)


def _arch_stats(stages: Dict[str, Any], stage: str) -> Dict[str, Any]:
    """Params/FLOPs of the network behind a row: INT8 rows share their FP32 source's architecture."""
    source = {"base_int8": "base", "pruned_int8": "pruned"}.get(stage, stage)
    entry = stages[source]
    return {"params": entry.get("params"), "flops": entry.get("flops")}


def _quality(xml: str, pairs: List[Any], data: str) -> Dict[str, Any]:
    summary = evaluate(load_model(xml), pairs, progress=False, data=data).summary
    quality = {k: summary["mean"][k] for k in ("mae", "iou", "boundary_iou") if k in summary["mean"]}
    for key in ("maxF", "S", "maxE"):
        if key in summary.get("sod", {}):
            quality[key] = summary["sod"][key]
    for key in ("mse", "sad"):
        if key in summary.get("matting", {}):
            quality[key] = summary["matting"][key]
    return quality


def _rows(stages: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per ROWS entry whose stage ran: measurable ones with their IR, failed ones with the reason."""
    rows = []  # type: List[Dict[str, Any]]
    for stage, precision, label in ROWS:
        entry = stages.get(stage)
        if entry is None:
            continue
        row = dict(label=label, stage=stage, precision=precision.upper(), **_arch_stats(stages, stage))
        if precision in entry.get("irs", {}):
            xml = entry["irs"][precision]
            rows.append(dict(row, ir=xml, ir_mb=model_file_mb(xml), warning=entry.get("warning")))
        elif precision in entry.get("failed", {}):
            failed = entry["failed"][precision]
            rows.append(dict(row, ir=failed["ir"], failed="{} parity failed ({}); kept as {}".format(
                precision.upper(), failed["reason"], failed["ir"])))
        elif entry.get("skipped"):
            rows.append(dict(row, ir=None, failed="not made: " + entry["skipped"]))
    return rows


def build_report(folder: Path, state: Dict[str, Any], config: Any, verbose: bool = True) -> Dict[str, Any]:
    """Measure every IR of the pipeline in one run and write report.json / report.md / report.png into `folder`."""
    stages = state["stages"]
    rows = _rows(stages)
    measured = [r for r in rows if "failed" not in r]
    settings = {"rounds": config.bench_runs, "threads": config.threads}  # type: Dict[str, Any]
    if measured:
        # the FP32 rows' ONNX files under ONNX Runtime too, in the same interleaved run: the OpenVINO gain in view
        onnx = {r["label"]: stages[r["stage"]].get("onnx") for r in measured if r["precision"] == "FP32"}
        onnx = {label: path for label, path in onnx.items() if path and Path(path).is_file()}
        timing = bench([r["ir"] for r in measured] + sorted(set(onnx.values())), devices=("CPU",),
                       vs=("onnxruntime",) if onnx else (), niter=config.bench_runs, threads=config.threads)
        settings = timing["settings"]
        by_file = {(t["model"], t["backend"]): t for t in timing["rows"]}
        for row in measured:
            row["latency"] = by_file[(row["ir"], "openvino")]["latency"]
            if row["label"] in onnx:
                row["ort_latency"] = by_file[(onnx[row["label"]], "onnxruntime")]["latency"]
                row["onnx"] = onnx[row["label"]]
    if config.val:
        pairs = find_pairs(config.val)
        pairs = pairs[:config.val_limit] if config.val_limit else pairs
        for row in measured:
            row["quality"] = _quality(row["ir"], pairs, config.val)
    _compare(measured)
    report = {"rows": rows, "settings": dict(settings, val=config.val, val_images=len(pairs) if config.val else 0),
              "baseline": measured[0]["label"] if measured else None, "prune": _prune_record(stages),
              "budget": _budget(rows, getattr(config, "target_speedup", None), getattr(config, "max_loss", None))}
    write_text(str(folder / "report.json"), json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_text(str(folder / "report.md"), markdown(report))
    if config.val and measured:
        write_plot({"rows": measured}, str(folder / "report.png"))
    if verbose:
        print(markdown(report))
    return report


def _compare(rows: List[Dict[str, Any]]) -> None:
    """Speed-up and relative MAE change of every measured row against the first (the unpruned FP32 IR)."""
    if not rows:
        return
    base = rows[0]
    for row in rows:
        row["speedup"] = round(base["latency"]["median_ms"] / row["latency"]["median_ms"], 3)
        if "quality" in row and base["quality"].get("mae"):
            row["mae_change"] = round(row["quality"]["mae"] / base["quality"]["mae"] - 1.0, 4)


def _budget(rows: List[Dict[str, Any]], target_speedup: Optional[float],
            max_loss: Optional[float]) -> Optional[Dict[str, Any]]:
    """The last row (the pipeline's product) against the budgets the user set; None when none is set."""
    if not rows or (target_speedup is None and max_loss is None):
        return None
    last = rows[-1]
    checks = {}  # type: Dict[str, Dict[str, Any]]
    if target_speedup is not None:
        value = last.get("speedup")
        checks["speedup"] = {"value": value, "budget": target_speedup,
                             "met": value is not None and value >= target_speedup}
    if max_loss is not None:
        value = last.get("mae_change")
        checks["mae_change"] = {"value": value, "budget": max_loss, "met": value is not None and value <= max_loss}
    return {"row": last["label"], "checks": checks, "met": all(c["met"] for c in checks.values())}


def _prune_record(stages: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    entry = stages.get("prune")
    if not entry or not Path(entry["record"]).is_file():
        return None
    record = json.loads(Path(entry["record"]).read_text())
    return {k: v for k, v in record.items() if not isinstance(v, (dict, list))}


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _cells(r: Dict[str, Any], quality: bool) -> List[str]:
    """The table cells of one row ("-" where a failed row has nothing measured)."""
    failed = "failed" in r
    cells = [r["label"] + (" (failed)" if failed else ""), _num(r["params"] and r["params"] / 1e6, "{:.3f}"),
             _num(r["flops"] and r["flops"] / 1e9, "{:.3f}"), _num(r.get("ir_mb"), "{:.2f}"),
             _num(r.get("latency", {}).get("median_ms"), "{:.2f}"),
             _num(r.get("ort_latency", {}).get("median_ms"), "{:.2f}"), _num(r.get("speedup"), "{:.2f}x")]
    if quality:
        q = r.get("quality", {})
        change = r.get("mae_change")
        cells += [_num(q.get("mae"), "{:.4f}"), "-" if change is None else "{:+.1f} %".format(100 * change),
                  _num(q.get("maxF"), "{:.4f}"), _num(q.get("S"), "{:.4f}"), _num(q.get("iou"), "{:.4f}"),
                  _num(q.get("boundary_iou"), "{:.4f}")]
    return cells


def _budget_line(b: Dict[str, Any], baseline: Optional[str]) -> str:
    """The budgets the user set, each with its measured value and verdict."""
    parts = []
    if "speedup" in b["checks"]:
        c = b["checks"]["speedup"]
        parts.append("speed-up {} (budget at least {:g}x): {}".format(
            _num(c["value"], "{:.2f}x"), c["budget"], "met" if c["met"] else "NOT met"))
    if "mae_change" in b["checks"]:
        c = b["checks"]["mae_change"]
        parts.append("MAE change {} (budget at most {:+.1f} %): {}".format(
            "-" if c["value"] is None else "{:+.1f} %".format(100 * c["value"]), 100 * c["budget"],
            "met" if c["met"] else "NOT met"))
    return "Budgets, {} against {}: {}.".format(b["row"], baseline or "-", "; ".join(parts))


def markdown(report: Dict[str, Any]) -> str:
    """The report as a Markdown table plus settings, failed rows, warnings and the budget verdicts."""
    rows = report["rows"]
    quality = any("quality" in r for r in rows)
    head = ["stage", "params M", "GFLOPs", "IR MB", "median ms", "ONNX Runtime ms", "speed-up"]
    if quality:
        head += ["MAE", "MAE change", "max F", "S", "IoU", "BIoU"]
    lines = ["# Compression report", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cells(r, quality)) + " |" for r in rows]
    s = report["settings"]
    lines += ["", "Latency: OpenVINO CPU, median of {} interleaved rounds (order rotated), {} threads, load {}; "
                  "ONNX Runtime (CPU) runs the FP32 rows' ONNX file in the same rounds (INT8 and FP16 exist as IRs "
                  "only). Speed-up is against the unpruned FP32 IR.".format(
                      s["rounds"], s["threads"] or "all", s.get("loadavg")),
        "Quality: {} images of {} through the edge runtime (the deployed IRs).".format(s["val_images"], s["val"])
        if s.get("val") else "Quality: not measured (no --val)."]
    failed = [r for r in rows if "failed" in r]
    if failed:
        lines += ["", "Failed (not measured):"] + ["- {}: {}".format(r["label"], r["failed"]) for r in failed]
    warned = [r for r in rows if r.get("warning")]
    if warned:
        lines += ["", "Warnings:"] + ["- {}: {}".format(r["label"], r["warning"]) for r in warned]
    if report.get("prune"):
        lines += ["", "Prune record: " + ", ".join("{}={}".format(k, v) for k, v in sorted(report["prune"].items()))]
    if report.get("budget"):
        lines += ["", _budget_line(report["budget"], report.get("baseline"))]
    return "\n".join(lines) + "\n"
