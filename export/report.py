"""The pipeline's report: every stage's IR measured side by side (size, params, FLOPs, latency, quality) and compared
with the unpruned FP32 IR, written as report.json, report.md and report.png."""
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
# issue 4's target for the last row against the first
TARGET_SPEEDUP = 3.0
TARGET_MAX_LOSS = 0.10


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


def build_report(folder: Path, state: Dict[str, Any], config: Any, verbose: bool = True) -> Dict[str, Any]:
    """Measure every IR of the pipeline in one run and write report.json / report.md / report.png into `folder`."""
    stages = state["stages"]
    rows = []  # type: List[Dict[str, Any]]
    for stage, precision, label in ROWS:
        if stage in stages and precision in stages[stage].get("irs", {}):
            xml = stages[stage]["irs"][precision]
            rows.append(dict(label=label, stage=stage, precision=precision.upper(), ir=xml, ir_mb=model_file_mb(xml),
                             **_arch_stats(stages, stage)))
    timing = bench([r["ir"] for r in rows], devices=("CPU",), niter=config.bench_runs, threads=config.threads)
    for row, measured in zip(rows, timing["rows"]):
        row["latency"] = measured["latency"]
    if config.val:
        pairs = find_pairs(config.val)
        pairs = pairs[:config.val_limit] if config.val_limit else pairs
        for row in rows:
            row["quality"] = _quality(row["ir"], pairs, config.val)
    _compare(rows)
    report = {"rows": rows, "settings": dict(timing["settings"], val=config.val,
                                             val_images=len(pairs) if config.val else 0),
              "prune": _prune_record(stages), "target": _target(rows)}
    write_text(str(folder / "report.json"), json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_text(str(folder / "report.md"), markdown(report))
    if config.val:
        write_plot({"rows": rows}, str(folder / "report.png"))
    if verbose:
        print(markdown(report))
    return report


def _compare(rows: List[Dict[str, Any]]) -> None:
    """Speed-up and relative MAE change of every row against the first (the unpruned FP32 IR)."""
    base = rows[0]
    for row in rows:
        row["speedup"] = round(base["latency"]["median_ms"] / row["latency"]["median_ms"], 3)
        if "quality" in row and base["quality"].get("mae"):
            row["mae_change"] = round(row["quality"]["mae"] / base["quality"]["mae"] - 1.0, 4)


def _target(rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    last = rows[-1]
    if len(rows) < 2 or "mae_change" not in last:
        return None
    return {"row": last["label"], "speedup": last["speedup"], "mae_change": last["mae_change"],
            "needed": {"speedup": TARGET_SPEEDUP, "max_mae_change": TARGET_MAX_LOSS},
            "met": last["speedup"] >= TARGET_SPEEDUP and last["mae_change"] <= TARGET_MAX_LOSS}


def _prune_record(stages: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    entry = stages.get("prune")
    if not entry or not Path(entry["record"]).is_file():
        return None
    record = json.loads(Path(entry["record"]).read_text())
    return {k: v for k, v in record.items() if not isinstance(v, (dict, list))}


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def markdown(report: Dict[str, Any]) -> str:
    """The report as a Markdown table plus settings and the target verdict."""
    rows = report["rows"]
    quality = any("quality" in r for r in rows)
    head = ["stage", "params M", "GFLOPs", "IR MB", "median ms", "speed-up"]
    if quality:
        head += ["MAE", "MAE change", "max F", "S", "IoU", "BIoU"]
    lines = ["# Compression report", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], _num(r["params"] and r["params"] / 1e6, "{:.3f}"),
                 _num(r["flops"] and r["flops"] / 1e9, "{:.3f}"), "{:.2f}".format(r["ir_mb"]),
                 "{:.2f}".format(r["latency"]["median_ms"]), "{:.2f}x".format(r["speedup"])]
        if quality:
            q = r.get("quality", {})
            change = r.get("mae_change")
            cells += [_num(q.get("mae"), "{:.4f}"), "-" if change is None else "{:+.1f} %".format(100 * change),
                      _num(q.get("maxF"), "{:.4f}"),
                      _num(q.get("S"), "{:.4f}"), _num(q.get("iou"), "{:.4f}"), _num(q.get("boundary_iou"), "{:.4f}")]
        lines.append("| " + " | ".join(cells) + " |")
    s = report["settings"]
    lines += ["", "Latency: OpenVINO CPU, median of {} interleaved rounds (order rotated), {} threads, load {}.".format(
        s["rounds"], s["threads"] or "all", s.get("loadavg")),
        "Quality: {} images of {} through the edge runtime (the deployed IRs).".format(s["val_images"], s["val"])
        if s.get("val") else "Quality: not measured (no --val)."]
    if report.get("prune"):
        lines += ["", "Prune record: " + ", ".join("{}={}".format(k, v) for k, v in sorted(report["prune"].items()))]
    t = report.get("target")
    if t:
        lines += ["", "Target (issue 4): {} at least {:.0f}x faster than unpruned FP32 with at most {:.0f} % relative "
                  "MAE loss: {:.2f}x, {:+.1f} % -> {}.".format(t["row"], t["needed"]["speedup"],
                                                               100 * t["needed"]["max_mae_change"], t["speedup"],
                                                               100 * t["mae_change"], "met" if t["met"] else "NOT met")]
    return "\n".join(lines) + "\n"
