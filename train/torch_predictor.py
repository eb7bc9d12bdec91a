"""TorchPredictor: a kit checkpoint's model behind the edge runtime's Predictor interface, run by PyTorch."""
from itertools import islice
from typing import Any, Iterable, Iterator, List, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from edgematte.edge.card import ModelCard
from edgematte.edge.errors import DeviceError
from edgematte.edge.runtime import Predictor


def torch_device(device: str) -> torch.device:
    """The torch device for an edge device name: CPU -> cpu, CUDA/CUDA:n/GPU -> cuda; DeviceError otherwise."""
    name = device.strip().lower()
    if name in ("cpu", "auto"):
        return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") or name == "gpu":
        if not torch.cuda.is_available():
            raise DeviceError("device {}: no CUDA device is available to PyTorch".format(device))
        return torch.device("cuda" if name == "gpu" else name)
    raise DeviceError("device {}: checkpoints run on CPU or CUDA through PyTorch".format(device))


class TorchPredictor(Predictor):
    """A checkpoint's model in eval mode: stretch to the card's input size, normalise, deploy_forward, resize back."""

    def __init__(self, model: torch.nn.Module, card: ModelCard, source: str = "", device: str = "CPU",
                 batch: int = 4) -> None:
        self.device = device
        self.torch_device = torch_device(device)
        self.model = model.to(self.torch_device).eval()
        self.card = card
        self.source = source
        self.batch = max(1, int(batch))
        norm = card.normalisation
        self._rgb = norm.color.upper() == "RGB"
        self._mean = torch.tensor(norm.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(norm.std, dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "CPU", card: Optional[ModelCard] = None,
                        **opts: Any) -> "TorchPredictor":
        """Load a kit checkpoint (card from the checkpoint unless given)."""
        from .checkpoint import card_for, load_checkpoint

        model, ckpt = load_checkpoint(path)
        if card is None:
            card = ModelCard.from_dict(ckpt["card"], source=path) if ckpt.get("card") else card_for(model)
        return cls(model, card, source=str(path), device=device, **opts)

    def _tensor(self, images: List[np.ndarray]) -> torch.Tensor:
        h, w = self.card.input_size
        arrays = []
        for bgr in images:
            interp = cv2.INTER_AREA if bgr.shape[0] > h and bgr.shape[1] > w else cv2.INTER_LINEAR
            resized = cv2.resize(bgr, (int(w), int(h)), interpolation=interp)
            if self._rgb:
                resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
            arrays.append(resized.transpose(2, 0, 1))
        x = torch.from_numpy(np.stack(arrays).astype(np.float32))
        return ((x - self._mean) / self._std).to(self.torch_device)

    @torch.no_grad()
    def _run(self, images: List[np.ndarray]) -> List[np.ndarray]:
        out = self.model.deploy_forward(self._tensor(images)).float()
        results = []
        for i, bgr in enumerate(images):
            y = F.interpolate(out[i:i + 1], size=bgr.shape[:2], mode="bilinear", align_corners=False)[0]
            y = y.clamp(0, 1).cpu().numpy()
            results.append(np.ascontiguousarray(y[0] if y.shape[0] == 1 else y.transpose(1, 2, 0)))
        return results

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        """HxW float32 alpha in [0,1] at the image's size (HxWx3 probabilities for a trimap model)."""
        return self._run([bgr])[0]

    def prepare(self, bgr: np.ndarray) -> torch.Tensor:
        return self._tensor([bgr])

    @torch.no_grad()
    def infer(self, prepared: torch.Tensor) -> torch.Tensor:
        out = self.model.deploy_forward(prepared).float()
        if out.is_cuda:
            torch.cuda.synchronize()
        return out

    @torch.no_grad()
    def finish(self, raw: torch.Tensor, size: Any) -> np.ndarray:
        y = F.interpolate(raw[:1], size=tuple(size), mode="bilinear", align_corners=False)[0].clamp(0, 1).cpu().numpy()
        return np.ascontiguousarray(y[0] if y.shape[0] == 1 else y.transpose(1, 2, 0))

    def predict_many(self, images: Iterable[np.ndarray], nireq: int = 0) -> Iterator[np.ndarray]:
        """Predict a stream in batches of `nireq` (default: the predictor's batch), order kept."""
        size = nireq if nireq > 0 else self.batch
        stream = iter(images)
        while True:
            chunk = list(islice(stream, size))
            if not chunk:
                return
            for result in self._run(chunk):
                yield result
