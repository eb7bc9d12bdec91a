"""The kit's public face: `load` a model by any name or path, `remove` a background in one call, `list_models`."""
from typing import Any, Dict, List, Optional

import numpy as np

from .errors import InputError

DEFAULT_MODEL = "sod"  # the shipped general model; it also leads on people (README, "Shipped models")
CHANNELS = ("bgr", "rgb")  # pixel order of the images handed in; OpenCV gives BGR, PIL/imageio give RGB
OPERATIONS = ("cutout", "mask", "blur", "replace")


def list_models() -> List[str]:
    """Names of the installed zoo models (the package's own and those in $EDGEMATTE_ZOO), sorted."""
    from .zoo import list_zoo

    return list_zoo()


def load(model: Any = DEFAULT_MODEL, device: str = "CPU", config: Optional[Dict[str, Any]] = None,
         card: Any = None) -> Any:
    """A predictor for `model`: a zoo name, an IR .xml, an .onnx, a kit checkpoint (.pt, needs the train extra)
    or a foreign model as PATH@SPEC; compiled for `device` ("CPU", "GPU", "MYRIAD", "AUTO", ...).

    `config` goes to OpenVINO's compile_model; `card` supplies the model card of an artifact that has none.
    `predictor.predict(bgr)` gives the HxW float32 alpha in [0, 1] at the image's size.
    """
    from pathlib import Path

    from .runtime import load_model, model_reference

    text = model_reference(model)
    path, _, spec = text.rpartition("@")
    if path and spec and not Path(text).exists():  # PATH@SPEC: a foreign model fed by its preprocessing spec
        from .foreign import ForeignPredictor, load_spec

        return ForeignPredictor(path, load_spec(spec), device=device)
    return load_model(text, device=device, config=config, card=card)  # zoo names too (an unknown one lists them)


def _as_bgr(image: Any, channels: str) -> np.ndarray:
    """The image as a BGR uint8 array (a path is read from disk; RGB/RGBA arrays are reordered, not guessed)."""
    from pathlib import Path

    if channels not in CHANNELS:
        raise InputError("channels must be one of {}, got {!r}".format(", ".join(CHANNELS), channels))
    if isinstance(image, (str, Path)):
        from .io import read_image

        return read_image(image)
    from .runtime import check_image

    bgr = check_image(image)  # gray and 4-channel arrays become 3 channels; anything else is an InputError
    return np.ascontiguousarray(bgr[:, :, ::-1]) if channels == "rgb" else bgr


def remove(image: Any, model: Any = DEFAULT_MODEL, op: str = "cutout", device: str = "CPU",
           channels: str = "bgr", background: Any = "white", strength: Optional[float] = None,
           fg_estimate: bool = False, refine: Optional[str] = None, session: Any = None) -> np.ndarray:
    """One call from a photo to a result: `op` "cutout" gives BGRA uint8 (the subject on transparency), "mask"
    the HxW uint8 alpha, "blur" and "replace" a BGR uint8 picture (`strength` of the blur; `background` a colour
    name, #hex, an image path or a BGR array).

    `image` is a path or an HxWx3 uint8 array in `channels` order ("bgr" as OpenCV reads, "rgb" as PIL gives;
    the result is then RGB(A) too). Pass `session=load(...)` to reuse a loaded model across calls.
    `fg_estimate` unmixes the cutout's edge colours and `refine` ("cf" or "knn") re-solves the alpha's edge band
    by alpha matting; both need pymatting (the cutout extra), whose kernels compile once on first use.
    """
    from .apply import make_operation
    from .compose import DEFAULT_BLUR_STRENGTH

    if op not in OPERATIONS:
        raise InputError("op must be one of {}, got {!r}".format(", ".join(OPERATIONS), op))
    bgr = _as_bgr(image, channels)
    predictor = session if session is not None else load(model, device=device)
    if predictor.card.task == "trimap":
        raise InputError("model '{}' predicts a trimap, not an alpha: use a mask, sod, portrait or matte "
                         "model".format(predictor.card.name))
    if channels == "rgb" and isinstance(background, np.ndarray) and background.ndim == 3:
        background = np.ascontiguousarray(background[:, :, ::-1])
    operation = make_operation(op, strength=DEFAULT_BLUR_STRENGTH if strength is None else strength,
                               background=background, fg_estimate=fg_estimate and op == "cutout", refine=refine)
    result = operation.render(bgr, predictor.predict(bgr))
    if channels == "rgb" and result.ndim == 3:
        order = [2, 1, 0, 3] if result.shape[2] == 4 else [2, 1, 0]
        result = np.ascontiguousarray(result[:, :, order])
    return result


__all__ = ["load", "remove", "list_models", "DEFAULT_MODEL", "OPERATIONS", "CHANNELS"]
