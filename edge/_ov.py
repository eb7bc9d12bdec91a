"""Import OpenVINO under both API layouts: current (`openvino`) and 2022.3 LTS (`openvino.runtime`)."""


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


def version() -> str:
    """The installed OpenVINO version string."""
    try:
        return str(ov.get_version())
    except AttributeError:  # pragma: no cover
        import openvino.runtime as rt  # type: ignore

        return str(rt.get_version())


__all__ = ["ov", "Core", "Type", "Layout", "PrePostProcessor", "ColorFormat", "ResizeAlgorithm",
           "AsyncInferQueue", "version"]

