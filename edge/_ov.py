"""Import OpenVINO under both API layouts: current (`openvino`) and 2022.3 LTS (`openvino.runtime`)."""

from typing import Any, Dict, Optional


try:  # OpenVINO >= 2023.1 exposes the API at the top level.
    import openvino as ov  # type: ignore

    if not hasattr(ov, "Core"):
        raise ImportError("old layout")
except ImportError:  # OpenVINO 2022.3 LTS: the API lives under openvino.runtime.
    import openvino.runtime as ov  # type: ignore

try:
    from openvino.preprocess import PrePostProcessor, ColorFormat, ResizeAlgorithm  # type: ignore
except ImportError:  # pragma: no cover - very old layouts
    from openvino.runtime.preprocess import PrePostProcessor, ColorFormat, ResizeAlgorithm  # type: ignore

try:
    from openvino import AsyncInferQueue  # type: ignore
except ImportError:
    from openvino.runtime import AsyncInferQueue  # type: ignore

Type = ov.Type
Layout = ov.Layout
Core = ov.Core


PRECISION_KEYS = ("INFERENCE_PRECISION_HINT", "EXECUTION_MODE_HINT")


def with_exact_precision(core: Any, device: str, config: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """`config` plus INFERENCE_PRECISION_HINT=f32 on CPU unless the caller chose a precision or execution mode.

    OpenVINO's CPU plugin runs FP32/FP16 IRs in bf16 by default on CPUs with AVX512-BF16/AMX, which moves the
    matte by ~1e-2 and makes a model's numbers depend on the box; the kit keeps the precision the IR was exported
    at (its card's) and leaves bf16 as an explicit choice: config={"INFERENCE_PRECISION_HINT": "bf16"}.
    """
    merged = dict(config or {})
    if device != "CPU" or any(key in merged for key in PRECISION_KEYS):
        return merged
    try:
        supported = [str(p) for p in core.get_property("CPU", "SUPPORTED_PROPERTIES")]
    except Exception:  # noqa: BLE001 - an old plugin without the query keeps its own default
        return merged
    if "INFERENCE_PRECISION_HINT" in supported:
        merged["INFERENCE_PRECISION_HINT"] = "f32"
    return merged


def version() -> str:
    """The installed OpenVINO version string."""
    try:
        return str(ov.get_version())
    except AttributeError:  # pragma: no cover
        import openvino.runtime as rt  # type: ignore

        return str(rt.get_version())


__all__ = ["ov", "Core", "Type", "Layout", "PrePostProcessor", "ColorFormat", "ResizeAlgorithm",
           "AsyncInferQueue", "PRECISION_KEYS", "with_exact_precision", "version"]

