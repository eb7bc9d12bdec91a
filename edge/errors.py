"""The one error family a user can cause; the CLI prints its message on one line and exits non-zero."""


class EdgematteError(Exception):
    """Base of every error a user can cause (bad file, bad option, missing device)."""

    exit_code = 1


class InputError(EdgematteError):
    """An input image, video or folder cannot be read or is not acceptable."""


class ModelFileError(EdgematteError):
    """A model file (IR, ONNX, checkpoint, card) is missing, truncated or of the wrong kind."""


class DeviceError(EdgematteError):
    """The requested device is absent or cannot compile the model."""


class MissingExtraError(EdgematteError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(
            "{} needs the '{}' package: pip install 'edgematte[{}]'".format(feature, package, extra)
        )
