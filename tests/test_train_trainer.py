"""The training loop: every zoo model trains, resume is exact, DDP on 2 CPU ranks, the CLI, TorchPredictor."""
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_scene
from edgematte.edge.cli import main
from edgematte.train.models import list_models
from edgematte.train.trainer import TrainConfig, fit
from test_data_layouts import make_pairs_dataset

TINY_MBV2 = {"width": 0.35, "decoder_channels": [16, 16, 8, 8, 8]}
SMALL = {"mbv2_unet": TINY_MBV2, "mbv2_unet_sod": TINY_MBV2}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return str(make_pairs_dataset(tmp_path_factory.mktemp("data") / "d", n=6, size=(48, 64)))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(data: str, out: Path, model: str = "mbv2_unet", **kw) -> TrainConfig:
    base = dict(model=model, data=[data], val=[data], out=str(out), size=64, epochs=2, batch=2, workers=0,
                lr=1e-3, log_every=1, ckpt_every=100, model_config=dict(SMALL.get(model, {})))
    base.update(kw)
    return TrainConfig(**base)


def test_config_json_round_trip(tmp_path):
    cfg = _config("d", tmp_path, composite=["bg"], max_steps=3)
    assert TrainConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("model", list_models())
def test_each_zoo_model_trains(model, data, tmp_path):
    size = 32 if model == "u2net" else 64  # u2net: 44 M parameters
    result = fit(_config(data, tmp_path / "run", model=model, size=size, epochs=1, max_steps=2, val=[]))
    assert result.step == 2 and result.last_loss is not None and np.isfinite(result.last_loss)
    ckpt = torch.load(str(tmp_path / "run" / "checkpoints" / "last.pt"), weights_only=True)
    assert ckpt["arch"] == model and ckpt["train"]["step"] == 2


FIT_SCRIPT = """
import json, sys
from edgematte.train.trainer import TrainConfig, fit

if __name__ == "__main__":  # loader workers start by forkserver, which re-imports __main__
    losses = {}
    fit(TrainConfig.from_json(open(sys.argv[1]).read()), on_step=lambda step, loss: losses.__setitem__(step, loss))
    with open(sys.argv[2], "w") as handle:
        json.dump(losses, handle)
"""


def _fit_with_a_worker(config: TrainConfig, tmp_path: Path) -> dict:
    """fit() in a fresh interpreter, as `edgematte train` runs: loader workers started from this long-lived pytest
    process (which has loaded OpenVINO, NNCF, ONNX Runtime, numba...) crashed it once in a full run."""
    (tmp_path / "fit_config.json").write_text(config.to_json())
    (tmp_path / "fit.py").write_text(FIT_SCRIPT)
    code, log = _run_isolated([sys.executable, str(tmp_path / "fit.py"), str(tmp_path / "fit_config.json"),
                               str(tmp_path / "losses.json")], tmp_path / "fit.log", timeout=300)
    assert code == 0, log[-3000:]
    return {int(k): v for k, v in json.loads((tmp_path / "losses.json").read_text()).items()}


def test_resume_is_exact(data, tmp_path):
    """N steps, stop, resume: steps N+1.. give the same losses and weights as an uninterrupted run."""
    full_losses = _fit_with_a_worker(_config(data, tmp_path / "full", workers=1), tmp_path)
    assert sorted(full_losses) == list(range(1, 7))  # 6 pairs / batch 2 = 3 steps per epoch, 2 epochs

    part = {}
    first = fit(_config(data, tmp_path / "part", max_steps=4), on_step=lambda s, l: part.__setitem__(s, l))
    assert first.step == 4 and not first.finished
    second = fit(_config(data, tmp_path / "part"), resume=True, on_step=lambda s, l: part.__setitem__(s, l))
    assert second.finished and second.step == 6
    assert part == full_losses  # bit-identical losses for every step, including 5 and 6

    a = torch.load(str(tmp_path / "full" / "checkpoints" / "last.pt"), weights_only=True)["state_dict"]
    b = torch.load(str(tmp_path / "part" / "checkpoints" / "last.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with open(str(tmp_path / "part" / "log.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows if r["loss"]] == [1, 2, 3, 4, 5, 6]
    assert sum(1 for r in rows if r["val_metric"]) == 2
    assert (tmp_path / "part" / "best.pt").is_file()


def test_finished_or_reached_chunks_do_nothing_on_resume(data, tmp_path):
    first = fit(_config(data, tmp_path / "c", epochs=1, max_steps=2))
    last = tmp_path / "c" / "checkpoints" / "last.pt"
    stamp = last.stat().st_mtime_ns
    again = fit(_config(data, tmp_path / "c", epochs=1, max_steps=2), resume=True)
    assert first.step == again.step == 2 and last.stat().st_mtime_ns == stamp
    done = fit(_config(data, tmp_path / "c", epochs=1), resume=True)
    assert done.finished and done.step == 3
    assert fit(_config(data, tmp_path / "c", epochs=1), resume=True).step == 3


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _run_isolated(cmd, log_path, timeout):
    """Run cmd in its own session with output to a file: on timeout the whole group (torchrun and its ranks) is
    killed, and no grandchild can hold a pipe open or signal pytest's own process group."""
    with open(str(log_path), "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = "timeout after {} s".format(timeout)
    return code, log_path.read_text()


DDP_SCRIPT = """
import json, os, sys
import edgematte.train.checkpoint as checkpoint
from edgematte.train.trainer import TrainConfig, fit

rank, record = os.environ["RANK"], sys.argv[2]
saved, steps = [], []
original = checkpoint.save_checkpoint

def save(path, *args, **kwargs):
    saved.append(os.path.relpath(path, sys.argv[3]))
    return original(path, *args, **kwargs)

checkpoint.save_checkpoint = save
config = TrainConfig(model="u2netp", data=[sys.argv[1]], val=[sys.argv[1]], out=sys.argv[3], size=64, epochs=1,
                     batch=1, workers=0, log_every=1, ckpt_every=2, device="cpu")
result = fit(config, on_step=lambda step, loss: steps.append([step, loss]))
with open(os.path.join(record, "rank" + rank + ".json"), "w") as handle:
    json.dump({"steps": steps, "saved": saved, "final": result.step}, handle)
"""


def test_ddp_two_cpu_ranks(data, tmp_path):
    """torchrun, 2 gloo ranks: both train their half of the data in lock-step; only rank 0 writes files."""
    out, record = tmp_path / "ddp", tmp_path / "record"
    record.mkdir()
    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           data, str(record), str(out)]
    code, log = _run_isolated(cmd, tmp_path / "torchrun.log", timeout=300)
    assert code == 0, log[-5000:]
    ranks = [json.loads((record / "rank{}.json".format(r)).read_text()) for r in (0, 1)]
    for info in ranks:  # 6 pairs over 2 ranks with batch 1: 3 steps each
        assert [s for s, _ in info["steps"]] == [1, 2, 3] and info["final"] == 3
    assert ranks[0]["steps"] != ranks[1]["steps"]  # different shards: different local losses
    assert ranks[1]["saved"] == [] and {"checkpoints/last.pt", "best.pt"} <= set(ranks[0]["saved"])
    ckpt = torch.load(str(out / "checkpoints" / "last.pt"), weights_only=True)
    assert ckpt["train"]["step"] == 3 and not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert (out / "best.pt").is_file() and (out / "log.csv").is_file()


def test_cli_end_to_end_and_torch_predictor(data, tmp_path, capsys):
    run = tmp_path / "cli"
    code = main(["train", "u2netp", data, "--val", data, "-o", str(run), "--size", "64", "--epochs", "1",
                 "--batch", "2", "--workers", "0", "--log-every", "1"])
    assert code == 0
    assert "finished at step 3" in capsys.readouterr().out
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"] == "u2netp" and saved["size"] == 64
    for name in ("best.pt", "log.csv", "checkpoints/last.pt"):
        assert (run / name).is_file(), name

    from edgematte.edge.runtime import load_model

    predictor = load_model(str(run / "best.pt"))
    assert predictor.card.task == "saliency" and list(predictor.card.input_size) == [64, 64]
    bgr, _ = make_scene(50, 70, seed=9)
    alpha = predictor.predict(bgr)
    assert alpha.shape == (50, 70) and alpha.dtype == np.float32 and 0 <= alpha.min() <= alpha.max() <= 1
    many = list(predictor.predict_many([bgr, bgr[:30]], nireq=2))
    assert np.allclose(many[0], alpha, atol=1e-5) and many[1].shape == (30, 70)


def test_cli_resume_in_chunks(data, tmp_path, capsys):
    """`--max-steps` chunks with `--resume` reach the same weights as one uninterrupted CLI run."""
    common = ["train", "u2netp", data, "-o", None, "--size", "32", "--epochs", "1", "--batch", "2",
              "--workers", "0", "--log-every", "1"]
    full = tmp_path / "full"
    assert main([str(full) if a is None else a for a in common]) == 0
    chunked = tmp_path / "chunked"
    args = [str(chunked) if a is None else a for a in common]
    assert main(args + ["--max-steps", "1"]) == 0
    assert "stopped (resume with --resume) at step 1" in capsys.readouterr().out
    assert main(args + ["--resume", "--max-steps", "2"]) == 0
    assert main(args + ["--resume", "--lr", "5"]) == 0  # the run's config.json wins over a changed --lr
    out = capsys.readouterr().out
    assert "resumed" in out and "finished at step 3" in out
    assert json.loads((chunked / "config.json").read_text())["lr"] == 1e-3
    a = torch.load(str(full / "checkpoints" / "last.pt"), weights_only=True)["state_dict"]
    b = torch.load(str(chunked / "checkpoints" / "last.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_and_logs_written_atomically(data, tmp_path, monkeypatch):
    """Every file of a run lands by os.replace from a temp file in the same folder; no temp file is left."""
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    run = tmp_path / "atomic"
    fit(_config(data, run, model="u2netp", size=32, epochs=1, ckpt_every=1))
    targets = {dst.relative_to(run).as_posix() for _, dst in replaced}
    assert {"config.json", "log.csv", "best.pt", "checkpoints/last.pt"} <= targets
    assert all(src.parent == dst.parent and src.name != dst.name for src, dst in replaced)
    files = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert files <= targets | {p for p in files if p.startswith("tensorboard/")}


def test_exclude_holds_pairs_out(data, tmp_path):
    """--exclude/--include globs on image names: held-out pairs never reach training or validation."""
    from edgematte.train.data.dataset import gather_pairs
    from edgematte.edge.errors import InputError

    assert [p.stem for p in gather_pairs([data], exclude=["s00[0-1]*"])] == ["s002", "s003", "s004", "s005"]
    assert [p.stem for p in gather_pairs([data], include=["s00[0-3].*", "s005"], exclude=["s001"])] == \
        ["s000", "s002", "s003", "s005"]
    with pytest.raises(InputError, match="no pairs left"):
        gather_pairs([data], exclude=["s*"])
    seen = set()
    from edgematte.train.data import dataset as dataset_module

    real_load = dataset_module.PairDataset.load

    def spy(self, index):
        seen.add(self.pairs[index].stem)
        return real_load(self, index)

    dataset_module.PairDataset.load = spy
    try:
        result = main(["train", "u2netp", data, "--val", data, "-o", str(tmp_path / "x"), "--size", "32",
                       "--epochs", "1", "--batch", "2", "--workers", "0", "--exclude", "s000", "s001",
                       "--val-exclude", "s00[0-4]"])
    finally:
        dataset_module.PairDataset.load = real_load
    assert result == 0 and seen == {"s002", "s003", "s004", "s005"}
    saved = json.loads((tmp_path / "x" / "config.json").read_text())
    assert saved["exclude"] == ["s000", "s001"] and saved["val_exclude"] == ["s00[0-4]"]


def test_cli_and_loader_plugin_import_no_torch():
    """`edgematte` imports every verb's register() and every loader plugin at startup: they must stay light."""
    code = ("import sys, edgematte.train.cli as c, edgematte.train.predict as p; p.register(); "
            "from edgematte.edge.runtime import supported_suffixes; assert '.pt' in supported_suffixes(); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('edgematte.train.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['edgematte.train.cli', 'edgematte.train.predict']"


def test_trimap_predictor_gives_probabilities(data, tmp_path, capsys):
    fit(_config(data, tmp_path / "t0", epochs=1, val=[], max_steps=1))
    fit(_config(data, tmp_path / "t", epochs=1, val=[], composite=[data], composite_prob=1.0,
                init=str(tmp_path / "t0" / "checkpoints" / "last.pt")))
    assert "init from" in capsys.readouterr().out
    from edgematte.train.predict import TorchPredictor

    predictor = TorchPredictor.from_checkpoint(str(tmp_path / "t" / "best.pt"))
    probs = predictor.predict(make_scene(40, 30, seed=2)[0])
    assert probs.shape == (40, 30, 3) and np.allclose(probs.sum(axis=2), 1.0, atol=1e-3)


def test_cli_bad_data_is_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["train", "u2netp", str(tmp_path / "empty"), "-o", str(tmp_path / "r"), "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "no known dataset layout" in err


def test_train_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--val", "--size", "--epochs", "--batch", "--lr", "--workers", "--init", "--resume",
                 "--composite", "--max-steps", "--seed"):
        assert flag in text


def test_resumed_schedule_follows_the_config_not_the_checkpoint(data, tmp_path):
    """A run's config.json says how many epochs the lr spans; a resumed run takes it from there, not from the
    schedule pickled into last.pt (which kept the old total)."""
    def lr_at(run: Path, step: int) -> float:
        with open(str(run / "log.csv")) as handle:
            return next(float(r["lr"]) for r in csv.DictReader(handle) if r["loss"] and int(r["step"]) == step)

    fit(_config(data, tmp_path / "straight", epochs=4, max_steps=3, val=[]))
    fit(_config(data, tmp_path / "edited", epochs=2, max_steps=2, val=[]))
    stored = tmp_path / "edited" / "config.json"
    config = json.loads(stored.read_text())
    config["epochs"] = 4
    stored.write_text(json.dumps(config))
    fit(_config(data, tmp_path / "edited", epochs=2, max_steps=3, val=[]), resume=True)
    assert lr_at(tmp_path / "edited", 3) == pytest.approx(lr_at(tmp_path / "straight", 3))
    assert lr_at(tmp_path / "edited", 3) != pytest.approx(lr_at(tmp_path / "edited", 2))  # the lr does move
