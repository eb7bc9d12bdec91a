"""The training data path: the decoded uint8 cache gives the samples decoding gives (up to one 8-bit step of
resampling), is reused and never half-written; --limit takes the first N pairs; a run that does not beat a trivial
prediction says so."""
import numpy as np
import pytest

from edgematte.edge.cli import main
from edgematte.edge.datasets import find_pairs
from edgematte.train.data.cache import MARKER, DecodedCache, cache_side
from edgematte.train.data.dataset import PairDataset
from edgematte.train.trainer import TrainConfig, fit
from test_data_layouts import make_pairs_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return str(make_pairs_dataset(tmp_path_factory.mktemp("data") / "d", n=6, size=(48, 64)))


def test_cache_matches_decoding_and_is_reused(data, tmp_path):
    pairs = find_pairs(data)
    side = cache_side((64, 64))
    cache = DecodedCache(str(tmp_path / "c"), pairs, side)
    folders = [p for p in (tmp_path / "c").iterdir()]
    assert len(folders) == 1 and (folders[0] / MARKER).is_file()  # no partial folder left beside it
    plain = PairDataset(pairs, (64, 64), [0, 0, 0], [1, 1, 1], train=False)
    cached = PairDataset(pairs, (64, 64), [0, 0, 0], [1, 1, 1], train=False, cache=cache)
    for i in range(len(pairs)):
        a_img, a_alpha, _ = plain.load(i)
        b_img, b_alpha, _ = cached.load(i)
        assert np.abs(a_img.astype(int) - b_img.astype(int)).mean() < 6  # two resamplings instead of one
        assert np.abs(a_alpha - b_alpha).mean() < 0.03 and 0.0 <= b_alpha.min() and b_alpha.max() <= 1.0
    mtime = (folders[0] / "images.npy").stat().st_mtime_ns
    DecodedCache(str(tmp_path / "c"), pairs, side)
    assert (folders[0] / "images.npy").stat().st_mtime_ns == mtime  # reused, not rebuilt
    DecodedCache(str(tmp_path / "c"), pairs[:3], side)
    assert len(list((tmp_path / "c").iterdir())) == 2  # other pairs: a folder of their own


def test_train_with_cache_and_limit_and_trivial_warning(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "mbv2_unet_sod", data, "--val", data, "-o", str(out), "--size", "64", "--batch", "2",
            "--epochs", "1", "--workers", "0", "--limit", "4", "--cache", str(tmp_path / "cache"),
            "--width", "0.35", "--lr", "1e-6"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "finished at step 2 " in printed  # 4 pairs at batch 2: --limit took effect
    # one epoch at lr 1e-6 from random weights cannot beat predicting all background on these scenes
    assert "does not beat a trivial prediction" in printed and "'all background' scores" in printed
    fresh = [str(tmp_path / "run2") if a == str(out) else a for a in args]  # a new run: `out` holds one already
    assert main(fresh[:-2] + ["--limit", "0"]) == 1
    assert "--limit must be at least 1" in capsys.readouterr().err


def test_trivial_warning_stays_quiet_for_a_good_model(data):
    from edgematte.train.trainer import trivial_warning

    dataset = PairDataset(find_pairs(data), (64, 64), [0, 0, 0], [1, 1, 1], train=False)
    assert trivial_warning(dataset, "saliency", best=0.001) is None
    assert trivial_warning(dataset, "saliency", best=0.9) is not None
    assert trivial_warning(dataset, "trimap", best=0.99) is None
