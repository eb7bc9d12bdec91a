"""Shared fixtures: tiny synthetic data made in seconds, and the ../shared real-data marker."""
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEMATTE_SHARED", ROOT.parent / "shared"))


ORDER_ENV = "EDGEMATTE_TEST_ORDER"  # "reverse" or "random:SEED": show that no test leans on another's global state


def _reorder(items) -> None:
    order = os.environ.get(ORDER_ENV, "")
    if order == "reverse":
        items.reverse()
    elif order.startswith("random:"):
        import random

        random.Random(int(order.split(":", 1)[1])).shuffle(items)
    elif order:
        raise pytest.UsageError("{}={!r}: expected 'reverse' or 'random:SEED'".format(ORDER_ENV, order))


def pytest_collection_modifyitems(config, items):
    """Order the tests as EDGEMATTE_TEST_ORDER asks; skip tests marked `shared` when ../shared is absent."""
    _reorder(items)
    if (SHARED / "data").is_dir():
        return
    skip = pytest.mark.skip(reason="needs ../shared (real data), absent here")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """PyTorch on one thread for a whole test module (the suite shares 2 cores with other work), restored after.
    Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder (tests using it must carry @pytest.mark.shared)."""
    return SHARED


def make_scene(h: int = 96, w: int = 128, seed: int = 0):
    """A textured BGR uint8 image with a soft-edged ellipse as foreground, and its alpha in [0,1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    background = (rng.random((h, w, 3)) * 80 + 40).astype(np.float32)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    ry, rx = h * rng.uniform(0.2, 0.35), w * rng.uniform(0.2, 0.35)
    dist = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    alpha = np.clip((1.15 - dist) / 0.3, 0.0, 1.0).astype(np.float32)
    colour = rng.uniform(150, 255, size=3).astype(np.float32)
    image = background * (1 - alpha[..., None]) + colour * alpha[..., None]
    return image.clip(0, 255).astype(np.uint8), alpha


@pytest.fixture
def scene():
    """One synthetic (image, alpha) pair."""
    return make_scene()
