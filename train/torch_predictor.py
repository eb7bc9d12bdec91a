"""TorchPredictor: a kit checkpoint's model behind the edge runtime's Predictor interface, run by PyTorch."""
from itertools import islice
from typing import Any, Iterable, Iterator, List, Optional

import numpy as np
import torch

from edgematte.edge.card import ModelCard
from edgematte.edge.errors import DeviceError
from edgematte.edge.runtime import Predictor, from_network_output, to_network_input

# What deploy_forward takes (the checkpoint card's input): normalised float RGB NCHW.
TORCH_INPUT = {"dtype": "f32", "layout": "NCHW", "color": "RGB", "normalised": True}


def torch_device(device: str) -> torch.device:
    """The torch device for an edge device name: CPU -> cpu, CUDA/CUDA:n/GPU -> cuda; DeviceError otherwise."""
    name = device.strip().lower()
    if name in ("cpu", "auto"):
        return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") or name == "gpu":
        if not torch.cuda.is_available():
            raise DeviceError("device {}: no CUDA device is available to PyTorch".format(device))
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DeviceError("device {}: PyTorch sees {} CUDA device(s)".format(device, torch.cuda.device_count()))
        return torch.device("cuda" if name == "gpu" else name)
    raise DeviceError("device {}: checkpoints run on CPU or CUDA through PyTorch".format(device))


class TorchPredictor(Predictor):
    """A checkpoint's model in eval mode on CPU or CUDA, pre- and post-processed by the edge runtime's own functions
    (to_network_input / from_network_output), so that it differs from an IR of it only by the network."""

    def __init__(self, model: torch.nn.Module, card: ModelCard, source: str = "", device: str = "CPU",
                 batch: int = 4) -> None:
        self.device = device
        self.torch_device = torch_device(device)
        self.model = model.to(self.torch_device).eval()
        self.card = card
        self.source = source
        self.batch = max(1, int(batch))

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "CPU", card: Optional[ModelCard] = None,
                        **opts: Any) -> "TorchPredictor":
        """Load a kit checkpoint (card from the checkpoint unless given)."""
        from .checkpoint import card_for, load_checkpoint

        model, ckpt = load_checkpoint(path)
        if card is None:
            card = ModelCard.from_dict(ckpt["card"], source=path) if ckpt.get("card") else card_for(model)
        return cls(model, card, source=str(path), device=device, **opts)

    def _network_inputs(self, images: List[np.ndarray]) -> List[np.ndarray]:
        return [to_network_input(bgr, self.card, TORCH_INPUT) for bgr in images]

    @torch.no_grad()
    def _run(self, images: List[np.ndarray]) -> List[np.ndarray]:
        """Run consecutive images of one network size as one batch (dynamic cards can mix sizes)."""
        inputs = self._network_inputs(images)
        results = []  # type: List[np.ndarray]
        start = 0
        while start < len(inputs):
            end = start + 1
            while end < len(inputs) and inputs[end].shape == inputs[start].shape:
                end += 1
            x = torch.from_numpy(np.concatenate(inputs[start:end])).to(self.torch_device)
            out = self.model.deploy_forward(x).float().cpu().numpy()
            results += [from_network_output(out[i:i + 1], self.card, images[start + i].shape[:2])
                        for i in range(end - start)]
            start = end
        return results

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        """HxW float32 alpha in [0,1] at the image's size (HxWx3 probabilities for a trimap model)."""
        return self._run([bgr])[0]

    def prepare(self, bgr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self._network_inputs([bgr])[0]).to(self.torch_device)

    @torch.no_grad()
    def infer(self, prepared: torch.Tensor) -> torch.Tensor:
        out = self.model.deploy_forward(prepared).float()
        if out.is_cuda:
            torch.cuda.synchronize()
        return out

    def finish(self, raw: torch.Tensor, size: Any) -> np.ndarray:
        return from_network_output(raw[:1].cpu().numpy(), self.card, tuple(size))

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
