"""Side-by-side CPU latency of one model's artifacts (OpenVINO FP32 IR, FP16 IR, onnxruntime, PyTorch), interleaved.

Interleaving (one run of every backend per round, order rotated each round) spreads load from other processes over
all backends alike, so the medians stay comparable on a shared machine. Run as a script to export every zoo model
(untrained) at its default size and time it: python -m edgematte.export.latency OUT_DIR
"""
import argparse
import json
import os
import statistics
import time
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

Call = Callable[[], Any]


def _openvino_call(xml_path: str, threads: int) -> Call:
    """One synchronous inference of the IR on a random u8 BGR NHWC image, compiled for latency on `threads`."""
    from edgematte.edge._ov import Core, with_exact_precision

    core = Core()
    compiled = core.compile_model(str(xml_path), "CPU", with_exact_precision(core, "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads)}))
    shape = [int(d) for d in compiled.input(0).get_partial_shape().to_shape()]
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    request = compiled.create_infer_request()
    return lambda: request.infer({0: image})


def _onnxruntime_call(onnx_path: str, threads: int) -> Call:
    """One onnxruntime run of the ONNX file on a random normalised f32 NCHW input."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    meta = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal([int(d) for d in meta.shape]).astype(np.float32)
    return lambda: session.run(None, {meta.name: x})


def _torch_call(model: Any, input_size: Sequence[int], threads: int) -> Call:
    """One model.deploy_forward in FP32 under inference_mode."""
    import torch

    torch.set_num_threads(int(threads))
    net = model.eval()
    x = torch.randn(1, 3, int(input_size[0]), int(input_size[1]), generator=torch.Generator().manual_seed(0))

    def run() -> Any:
        with torch.inference_mode():
            return net.deploy_forward(x)

    return run


def compare_latency(xml_paths: Optional[Dict[str, str]] = None, onnx_path: Optional[str] = None,
                    model: Any = None, input_size: Optional[Sequence[int]] = None, runs: int = 20, warmup: int = 3,
                    threads: int = 2) -> Dict[str, Any]:
    """Median/min/max milliseconds per backend over `runs` interleaved rounds after `warmup` rounds.

    xml_paths: precision -> IR path ("openvino_fp32", "openvino_fp16" in the result); onnx_path: onnxruntime;
    model + input_size: PyTorch deploy_forward. Any of them may be left out. Also records the 1-minute load average.
    """
    calls: Dict[str, Call] = {}
    for precision, xml in sorted((xml_paths or {}).items(), key=lambda kv: kv[0] != "fp32"):
        calls["openvino_" + precision] = _openvino_call(xml, threads)
    if onnx_path:
        calls["onnxruntime"] = _onnxruntime_call(onnx_path, threads)
    if model is not None:
        if input_size is None:
            input_size = model.config.input_size
        calls["torch"] = _torch_call(model, input_size, threads)
    names = list(calls)
    times: Dict[str, list] = {name: [] for name in names}
    load_before = os.getloadavg()[0]
    for round_index in range(warmup + runs):
        shift = round_index % max(1, len(names))
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name]()
            elapsed = (time.perf_counter() - start) * 1000.0
            if round_index >= warmup:
                times[name].append(elapsed)
    result: Dict[str, Any] = {"runs": runs, "warmup": warmup, "threads": threads,
                              "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    for name in names:
        result[name] = {"median_ms": round(statistics.median(times[name]), 2),
                        "min_ms": round(min(times[name]), 2), "max_ms": round(max(times[name]), 2)}
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Export every zoo model (untrained) at its default size into OUT_DIR and time its artifacts side by side."""
    import torch

    from edgematte.train.models import list_models

    from edgematte.edge.io import write_text

    from .api import REPORT_NAME, ExportReport, export_model, onnx_name
    from .parity import ParityError
    from .to_ir import batchnorm_ops  # noqa: F401 - keeps the import cost out of the timed section

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", help="folder for the exported models and latency.json")
    parser.add_argument("--models", default=",".join(list_models()), help="comma-separated zoo names")
    parser.add_argument("--runs", type=int, default=20, help="timed rounds per backend")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every backend")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for name in [m for m in args.models.split(",") if m]:
        out = os.path.join(args.out, name)
        try:
            report = export_model(name, out, untrained=True, image_count=8)
        except ParityError as error:  # files and report are written; time them anyway, the report says what failed
            print("parity: {}".format(error), flush=True)
            with open(os.path.join(out, REPORT_NAME)) as handle:
                report = ExportReport.from_dict(json.load(handle))
        from edgematte.train.models import create_model

        torch.manual_seed(0)
        model = create_model(name).eval()
        size = report.input_size
        latency = compare_latency({p: os.path.join(out, report.ir_file(p)) for p in report.ir},
                                  os.path.join(out, onnx_name(report.stem)), model, size, runs=args.runs,
                                  threads=args.threads)
        results[name] = {"input_size": size, "params": report.params, "flops": report.flops, "files": report.files,
                         "onnx_ort_max_abs_diff": report.onnx["ort_max_abs_diff"],
                         "opencv_dnn": report.onnx["opencv_dnn"],
                         "ir_batchnorm_ops": {p: v["batchnorm_ops"] for p, v in report.ir.items()},
                         "parity": {k: {"max_abs_diff": v["max_abs_diff"], "min_iou": v["min_iou"],
                                        "images": v["images"], "ok": v["ok"]} for k, v in report.parity.items()},
                         "parity_images": report.parity_images, "latency": latency}
        print(json.dumps({name: results[name]}, indent=1), flush=True)
        write_text(os.path.join(args.out, "latency.json"), json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
