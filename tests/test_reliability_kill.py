"""SIGKILL during `edgematte export` and `edgematte train`: no partial file ever sits at a target name (only
complete, loadable artifacts, or nothing), leftovers carry hidden temp names that the next run ignores, and
`train --resume` continues from the last checkpoint on disk, losing at most the steps since it.

The kill points are made exact without timing: a launcher runs the real CLI in-process and, at the chosen write,
freezes the process (for "mid-write": after cutting the temp file to half its bytes, as a kill during the write
leaves it) and drops a marker file; the test waits for the marker and kills the whole process group. One training
run is also killed by the clock alone (at whatever it is doing once a checkpoint at step >= 6 is seen).
Every wait has a generous timeout and nothing asserts on durations, so a loaded 2-core box only makes it slower.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_data_layouts import make_pairs_dataset  # noqa: E402

LAUNCHER = r'''
"""Run `edgematte ARGS` in-process; at the write named by HOOK, freeze (write MARKER first) and wait for SIGKILL."""
import os, sys, time

hook, marker, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
real_replace = os.replace


def freeze(note):
    with open(marker + ".part", "w") as handle:
        handle.write(note)
    real_replace(marker + ".part", marker)
    while True:
        time.sleep(60)


def cut_half(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)


kind, _, arg = hook.partition(":")
if kind == "onnx-half":  # killed while the ONNX temp file is half written
    import onnx
    real_save = onnx.save_model

    def save_model(proto, f, *args, **kwargs):
        real_save(proto, f, *args, **kwargs)
        cut_half(str(f))
        freeze("onnx " + str(f))
    onnx.save_model = save_model
elif kind == "before-replace":  # killed just before the COUNT-th rename onto a target ending in SUFFIX
    suffix, _, count = arg.partition("@")
    renames = []

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith(suffix):
            renames.append(dst)
            if len(renames) == int(count or 1):
                freeze("replace {} -> {}".format(src, dst))
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
elif kind == "save-half":  # killed while the ARG-th checkpoint whose target contains NAME is half written
    import torch
    count, name = int(arg.split("@")[0]), arg.split("@")[1]
    real_save, seen = torch.save, []

    def save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if os.path.basename(str(f)).startswith("." + name + "."):
            seen.append(f)
            if len(seen) == count:
                cut_half(str(f))
                freeze("save " + str(f))
    torch.save = save
elif kind != "none":
    raise SystemExit("unknown hook " + hook)

from edgematte.edge.cli import main
sys.exit(main(argv))
'''


def _env() -> Dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


class Run:
    """The CLI in its own session (so the whole group can be SIGKILLed), output to a log file."""

    def __init__(self, tmp: Path, name: str, hook: str, args: List[str]) -> None:
        self.marker = tmp / (name + ".frozen")
        self.log_path = tmp / (name + ".log")
        launcher = tmp / "launcher.py"
        if not launcher.exists():
            launcher.write_text(LAUNCHER)
        self._log = open(str(self.log_path), "w")
        self.proc = subprocess.Popen([sys.executable, str(launcher), hook, str(self.marker)] + args,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the run's whole process group (never a reaped pid: its number may be someone else's by now)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=60)
        self._log.close()

    def wait_frozen(self, timeout: float = 600) -> str:
        """Block until the launcher froze at its hook (then SIGKILL the group); the note says where it froze."""
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.proc.poll() is not None:
                self._log.close()
                raise AssertionError("exited {} before its kill point:\n{}".format(self.proc.returncode,
                                                                                   self.log()[-3000:]))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("no kill point within {} s:\n{}".format(timeout, self.log()[-3000:]))
            time.sleep(0.05)
        note = self.marker.read_text()
        self.kill()
        return note

    def finish(self, timeout: float = 600) -> str:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._log.close()
        text = self.log_path.read_text(errors="replace")
        assert code == 0, text[-3000:]
        return text


def _visible(folder: Path) -> List[str]:
    """Names at target level: everything not hidden (the kit's temp names all start with '.')."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def _hidden(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


# -- export -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    from edgematte.train.checkpoint import save_checkpoint
    from edgematte.train.models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    model = create_model("mbv2_unet_sod", width=0.35, decoder_channels=[16, 16, 8, 8, 8], input_size=[64, 64])
    save_checkpoint(str(path), model)
    return path


def _export_args(ckpt: Path, out: Path) -> List[str]:
    return ["export", str(ckpt), "-o", str(out), "--precision", "fp32", "--images", "synthetic",
            "--image-count", "1"]


def _check_onnx(path: Path) -> None:
    """A complete ONNX: parses, passes the checker, carries its card, runs."""
    import onnx

    from edgematte.edge.runtime import load_model

    onnx.checker.check_model(onnx.load(str(path)))
    assert load_model(str(path)).predict(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30)


@pytest.mark.slow
def test_sigkill_during_export(small_checkpoint: Path, tmp_path: Path) -> None:
    """The export set appears whole or not at all: it is built in a hidden folder beside -o and swapped in."""
    name = "model"  # export's file stem
    mid_onnx, before_xml, seeded = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    # c: an earlier export was killed here by an older kit (its hidden leftovers) beside a file of the user's
    seeded.mkdir()
    (seeded / ".{}.k1ll3d.tmp.onnx".format(name)).write_bytes(b"\x08\x07" + os.urandom(500))
    (seeded / ".{}_fp32.k1ll3d.tmp".format(name)).mkdir()
    (seeded / ".{}_fp32.k1ll3d.tmp".format(name) / (name + "_fp32.xml")).write_text("<net")
    (seeded / "notes.txt").write_text("mine")
    runs = [Run(tmp_path, "a", "onnx-half", _export_args(small_checkpoint, mid_onnx)),
            Run(tmp_path, "b", "before-replace:_fp32.xml", _export_args(small_checkpoint, before_xml)),
            Run(tmp_path, "c", "none", _export_args(small_checkpoint, seeded))]
    try:
        runs[0].wait_frozen()
        runs[1].wait_frozen()
        runs[2].finish()
    finally:
        for run in runs:
            if run.proc.poll() is None:
                run.kill()

    def staging(folder: Path) -> List[Path]:
        return [p for p in tmp_path.iterdir() if p.name.startswith("." + folder.name + ".")]

    # a: killed while the ONNX was half written: no -o folder at all; the cut file is in the hidden staging folder
    assert not mid_onnx.exists()
    assert [p for stage in staging(mid_onnx) for p in stage.rglob("*.onnx")], staging(mid_onnx)

    # b: killed between the IR's .bin and .xml renames (inside the staging folder): nothing of the set is visible
    assert not before_xml.exists() and staging(before_xml)

    # c: the re-run completes; every target is complete and loadable; the user's file and the leftovers stay
    from edgematte.edge.runtime import load_model

    assert _visible(seeded) == sorted(["export_report.json", name + ".onnx", name + "_fp32.xml", name + "_fp32.bin",
                                       "notes.txt"])
    assert (seeded / "notes.txt").read_text() == "mine" and len(_hidden(seeded)) == 3  # 2 leftovers + manifest
    _check_onnx(seeded / (name + ".onnx"))
    predictor = load_model(str(seeded / (name + "_fp32.xml")))  # checks the .bin against the card's sha256
    assert predictor.predict(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30)
    json.loads((seeded / "export_report.json").read_text())
    assert not staging(seeded)

    # d: a re-export into c killed at its last step before the swap (the new set complete, manifest written):
    # c still holds the old set, byte for byte
    before = {p.name: p.read_bytes() for p in seeded.iterdir() if p.is_file()}
    again = Run(tmp_path, "d", "before-replace:.edgematte-files.json", _export_args(small_checkpoint, seeded))
    try:
        again.wait_frozen()
    finally:
        again.kill()
    assert {p.name: p.read_bytes() for p in seeded.iterdir() if p.is_file()} == before
    assert staging(seeded)


# -- train ------------------------------------------------------------------------------------------------------
STEPS = 12  # 8 pairs / batch 2 = 4 steps per epoch, 3 epochs


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_pairs_dataset(tmp_path_factory.mktemp("data") / "d", n=8, size=(48, 64))


def _train_args(data: Path, out: Path, resume: bool = False) -> List[str]:
    args = ["train", "mbv2_unet_sod", str(data), "-o", str(out), "--size", "64", "--epochs", "3", "--batch", "2",
            "--workers", "0", "--ckpt-every", "2", "--log-every", "1", "--width", "0.35", "--device", "cpu"]
    return args + (["--resume"] if resume else [])


def _step(path: Path) -> Optional[int]:
    """The training step a complete checkpoint holds; None when there is none (a partial file would raise)."""
    if not path.exists():
        return None
    return int(torch.load(str(path), map_location="cpu", weights_only=True)["train"]["step"])


def _check_run_dir(run: Path) -> Optional[int]:
    """Every file at a target name in a killed run is complete; returns the step of checkpoints/last.pt."""
    from edgematte.train.checkpoint import load_checkpoint

    assert set(_visible(run)) <= {"config.json", "log.csv", "best.pt", "checkpoints"}, _visible(run)
    if (run / "config.json").exists():
        json.loads((run / "config.json").read_text())
    if (run / "best.pt").exists():
        load_checkpoint(str(run / "best.pt"))
    assert set(_visible(run / "checkpoints")) <= {"last.pt"}
    step = _step(run / "checkpoints" / "last.pt")
    if step is not None:
        load_checkpoint(str(run / "checkpoints" / "last.pt"))
        logged = [int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:]
                  if line.split(",")[0].isdigit()]
        # log.csv is written before last.pt: every step up to the checkpoint is logged (later rows are dropped on resume)
        assert logged == sorted(set(logged)) and set(range(1, step + 1)) <= set(logged), logged
    return step


def _logged_steps(run: Path) -> List[int]:
    rows = (run / "log.csv").read_text().splitlines()[1:]
    return [int(row.split(",")[0]) for row in rows if row.split(",")[2:3] != [""]]  # loss rows, not val rows


def _check_resumed(run: Path, log: str, from_step: Optional[int], steps: int = STEPS, whole_log: bool = True) -> None:
    """The resumed run said where it picked up, finished, and logged every step once (`whole_log`: all of them;
    else only those after the resume point are required)."""
    if from_step is None:
        assert "resumed" not in log
    else:
        assert "at step {} ".format(from_step) in log.split("resumed", 1)[1].splitlines()[0], log[-2000:]
    assert _step(run / "checkpoints" / "last.pt") == steps
    logged = _logged_steps(run)
    assert len(logged) == len(set(logged)) and logged == sorted(logged), logged
    expected = range(1, steps + 1) if whole_log else range((from_step or 0) + 1, steps + 1)
    assert set(expected) <= set(logged), logged
    assert _hidden(run / "checkpoints") == [] or all(".tmp" in n for n in _hidden(run / "checkpoints"))


@pytest.mark.slow
def test_sigkill_during_training_then_resume(data: Path, tmp_path: Path) -> None:
    mid_last, mid_best, by_clock = tmp_path / "mid_last", tmp_path / "mid_best", tmp_path / "clock"
    runs = {"mid_last": Run(tmp_path, "mid_last", "save-half:2@last", _train_args(data, mid_last)),
            "mid_best": Run(tmp_path, "mid_best", "save-half:1@best", _train_args(data, mid_best)),
            "clock": Run(tmp_path, "clock", "none", _train_args(data, by_clock))}
    seen = 0
    try:
        # the clock run: SIGKILL as soon as a checkpoint at step >= 6 is seen, whatever the run is doing then
        last = by_clock / "checkpoints" / "last.pt"
        deadline = time.monotonic() + 600
        while seen < 6:
            exited = runs["clock"].proc.poll()
            try:
                seen = max(seen, _step(last) or 0)
            except Exception:  # noqa: BLE001 - never expected: the file is replaced whole
                raise AssertionError("a partial last.pt was visible at its target name") from None
            if exited is not None:  # it outran the poll (finished): the end state must still resume cleanly
                assert exited == 0, runs["clock"].log()[-3000:]
                break
            assert time.monotonic() < deadline, runs["clock"].log()[-3000:]
            time.sleep(0.02)
        runs["clock"].kill()
        notes = {name: runs[name].wait_frozen() for name in ("mid_last", "mid_best")}
    finally:
        for run in runs.values():
            if run.proc.poll() is None:
                run.kill()

    assert "/.last." in notes["mid_last"] and "/.best." in notes["mid_best"], notes
    # mid_last froze while writing the 2nd checkpoint (step 4): last.pt is still the complete step-2 one
    assert _check_run_dir(mid_last) == 2
    # mid_best froze writing best.pt at the first epoch end (step 4): no best.pt at its name; last.pt is complete
    assert not (mid_best / "best.pt").exists()
    best_from = _check_run_dir(mid_best)
    assert best_from in (4,), best_from  # the periodic step-4 checkpoint was written just before
    clock_from = _check_run_dir(by_clock)
    assert clock_from is not None and clock_from >= seen  # nothing older than what was on disk is resumed

    resumes = {name: Run(tmp_path, name + "_resume", "none", _train_args(data, folder, resume=True))
               for name, folder in (("mid_last", mid_last), ("mid_best", mid_best), ("clock", by_clock))}
    logs = {name: run.finish() for name, run in resumes.items()}
    _check_resumed(mid_last, logs["mid_last"], 2)
    _check_resumed(mid_best, logs["mid_best"], best_from)
    _check_resumed(by_clock, logs["clock"], clock_from)  # log.csv is written before last.pt: no row is lost
    from edgematte.train.checkpoint import load_checkpoint

    for folder in (mid_last, mid_best, by_clock):
        load_checkpoint(str(folder / "best.pt"))


@pytest.mark.slow
def test_sigkill_between_checkpoint_and_log_keeps_every_log_row(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = _train_args(data, run_dir)
    args[args.index("--epochs") + 1] = "1"  # 4 steps: checkpoints at steps 2 and 4
    run = Run(tmp_path, "between", "before-replace:last.pt@2", args)
    run.wait_frozen()  # the log.csv holding steps 3 and 4 is in place, the step-4 last.pt is not
    assert _check_run_dir(run_dir) == 2
    log = Run(tmp_path, "between_resume", "none", args + ["--resume"]).finish()
    _check_resumed(run_dir, log, 2, steps=4)
