"""edgematte.edge: the torch-free runtime (OpenVINO, numpy, OpenCV) that runs on edge boxes."""
from .card import ModelCard, Normalisation
from .errors import DeviceError, EdgematteError, InputError, MissingExtraError, ModelFileError

__all__ = ["ModelCard", "Normalisation", "EdgematteError", "InputError", "ModelFileError", "DeviceError",
           "MissingExtraError"]
