"""edgematte.edge: the torch-free runtime (OpenVINO, numpy, OpenCV) that runs on edge boxes."""
from . import startup  # first: Ctrl-C while the edgematte command starts is one line, exit 130
from .card import ModelCard, Normalisation
from .errors import DeviceError, EdgematteError, InputError, MissingExtraError, ModelFileError
from .api import list_models, load, remove

__all__ = ["load", "remove", "list_models", "ModelCard", "Normalisation", "EdgematteError", "InputError",
           "ModelFileError", "DeviceError", "MissingExtraError"]
