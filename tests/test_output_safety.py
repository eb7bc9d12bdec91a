"""Outputs: the kit deletes or replaces only files it wrote and can prove so; inputs are never overwritten; folder
sets swap in whole; SIGTERM/SIGHUP clean temporaries like Ctrl-C; long names; run folders of `train`."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from conftest import make_scene
from edge_tiny import build_ir
from edgematte.edge import outputs
from edgematte.edge.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_ir(tmp_path_factory.mktemp("model"), size=(32, 24))


def _image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), make_scene(24, 32, seed=seed)[0])
    return path


def _video(path: Path, frames: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 24))
    for i in range(frames):
        writer.write(make_scene(24, 32, seed=i)[0])
    writer.release()
    return path


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("edgematte: error:"), err
    assert "Traceback" not in err and all(w in err for w in words), err
    return err


# -- dump -------------------------------------------------------------------------------------------
def test_dump_refuses_a_folder_of_someone_elses_files(tmp_path, model, capsys):
    image = _image(tmp_path / "a.jpg")
    results = tmp_path / "results"
    results.mkdir()
    (results / "notes.txt").write_text("mine")
    assert main(["dump", str(model), str(image), "-o", str(results)]) == 1
    _one_error(capsys, "notes.txt")
    assert _snapshot(results) == {"notes.txt": b"mine"}
    assert sorted(os.listdir(tmp_path)) == ["a.jpg", "results"]  # no staging folder left


def test_dump_into_the_working_folder_or_its_parent_is_refused(tmp_path, model, capsys, monkeypatch):
    work = tmp_path / "work"
    image = _image(work / "a.jpg")
    (work / "other.txt").write_text("x")
    before = _snapshot(tmp_path)
    monkeypatch.chdir(work)
    for out in (".", ".."):
        assert main(["dump", str(model), "a.jpg", "-o", out]) == 1
        _one_error(capsys, "-o " + out)
    monkeypatch.chdir(tmp_path / "work")
    assert main(["dump", str(model), str(image), "-o", str(tmp_path)]) == 1  # holds the working folder
    _one_error(capsys)
    assert _snapshot(tmp_path) == before


def test_dump_onto_a_file_is_one_line(tmp_path, model, capsys):
    image = _image(tmp_path / "a.jpg")
    target = tmp_path / "taken"
    target.write_text("keep")
    assert main(["dump", str(model), str(image), "-o", str(target)]) == 1
    _one_error(capsys, "is a file")
    assert target.read_text() == "keep"


def test_dump_replaces_its_own_earlier_dump_whole(tmp_path, model):
    a, b = _image(tmp_path / "a.jpg"), _image(tmp_path / "b.jpg", 1)
    out = tmp_path / "d"
    assert main(["dump", str(model), str(a), str(b), "-o", str(out)]) == 0
    assert (out / outputs.MANIFEST).is_file() and (out / "inputs" / "b.bin").is_file()
    assert main(["dump", str(model), str(a), "-o", str(out)]) == 0
    assert sorted(p.name for p in (out / "inputs").iterdir()) == ["a.bin"]
    (out / outputs.MANIFEST).unlink()  # a dump made before manifests: its index.json lists its files
    assert main(["dump", str(model), str(b), "-o", str(out)]) == 0
    assert sorted(p.name for p in (out / "outputs").iterdir()) == ["b.bin"]
    (out / "inputs" / "b.bin").write_bytes(b"changed by hand")  # no longer the kit's file
    assert main(["dump", str(model), str(a), "-o", str(out)]) == 1
    assert (out / "inputs" / "b.bin").read_bytes() == b"changed by hand"


# -- effect verbs -----------------------------------------------------------------------------------
def test_cutout_keeps_a_frame_folder_it_did_not_write(tmp_path, model, capsys):
    clip = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    (out / "clip").mkdir(parents=True)
    (out / "clip" / "x.jpg").write_bytes(b"mine")
    assert main(["cutout", str(clip), "-o", str(out), "-m", str(model)]) == 1
    _one_error(capsys, "clip")
    assert _snapshot(out) == {"clip/x.jpg": b"mine"}
    (out / "clip" / "x.jpg").unlink()
    assert main(["cutout", str(clip), "-o", str(out), "-m", str(model)]) == 0
    assert main(["cutout", str(clip), "-o", str(out), "-m", str(model)]) == 0  # its own folder: replaced
    assert len(list((out / "clip").glob("*.png"))) == 4
    assert not [n for n in os.listdir(out) if n.startswith(".")]


def test_nothing_is_written_into_a_frame_folder_of_the_same_run(tmp_path, model, capsys):
    src = tmp_path / "in"
    _video(src / "clip.mp4")
    _image(src / "clip" / "x.jpg")
    out = tmp_path / "out"
    assert main(["cutout", str(src), "-o", str(out), "-m", str(model)]) == 1
    err = capsys.readouterr().err
    assert "x.jpg" in err and "frame folder" in err
    assert sorted(p.name for p in (out / "clip").iterdir()) == [outputs.MANIFEST] + [
        "{:06d}.png".format(i) for i in range(4)]


def test_a_video_named_dot_dot_mp4_leaves_the_output_folder_alone(tmp_path, model, capsys):
    clip = _video(tmp_path / "..mp4")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.png").write_bytes(b"mine")
    assert main(["cutout", str(clip), "-o", str(out), "-m", str(model)]) == 1
    _one_error(capsys, "..mp4")
    assert _snapshot(out) == {"keep.png": b"mine"}


@pytest.mark.parametrize("verb,name,out", [("mask", "same", "same"), ("blur", "photo.jpg", "."),
                                           ("mask", "clip.mp4", "."), ("cutout", "same", "same")])
def test_an_output_that_would_overwrite_an_input_is_refused(tmp_path, model, capsys, monkeypatch, verb, name, out):
    _image(tmp_path / "same" / "b.png")
    _video(tmp_path / "same" / "same.mp4")
    _image(tmp_path / "same" / "same" / "c.png")  # inside the frame folder cutout would make of same.mp4
    _image(tmp_path / "photo.jpg")
    _video(tmp_path / "clip.mp4")
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main([verb, name, "-o", out, "-m", str(model)]) == 1
    _one_error(capsys, "an input")
    assert _snapshot(tmp_path) == before


def test_output_onto_a_file_is_reported_once_before_any_work(tmp_path, model, capsys):
    images = [str(_image(tmp_path / "{}.png".format(i), i)) for i in range(3)]
    target = tmp_path / "taken"
    target.write_text("keep")
    assert main(["mask"] + images + ["-o", str(target), "-m", str(model)]) == 1
    _one_error(capsys, "is a file")
    assert target.read_text() == "keep"


def test_long_names_fit_and_too_long_ones_are_one_line(tmp_path, model, capsys):
    limit = outputs.name_max(tmp_path)
    fits = _video(tmp_path / ("v" * (limit - 4) + ".mp4"))  # the output name fits exactly; its temp name is cut
    out = tmp_path / "out"
    assert main(["mask", str(fits), "-o", str(out), "-m", str(model)]) == 0
    assert [p.name for p in out.iterdir()] == [fits.name]
    image = _image(tmp_path / ("i" * (limit - 3) + ".sr"))  # Sun raster: its .png mask is one byte too long
    assert main(["mask", str(image), "-o", str(out), "-m", str(model)]) == 1
    _one_error(capsys, "file name is {} bytes".format(limit + 1), "allows {}".format(limit))
    assert [p.name for p in out.iterdir()] == [fits.name]


def test_files_in_hidden_folders_are_not_inputs(tmp_path, model):
    _image(tmp_path / "in" / "a.png")
    _image(tmp_path / "in" / ".out.k1ll3d.tmp" / "000000.png")  # a staging folder left by SIGKILL
    out = tmp_path / "out"
    assert main(["mask", str(tmp_path / "in"), "-o", str(out), "-m", str(model)]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["a.png"]


# -- signals ----------------------------------------------------------------------------------------
STOPPER = textwrap.dedent('''
    """Run `edgematte ARGS`; after the second frame is written, send this process SIGNAL."""
    import os, signal, sys
    from edgematte.edge import apply, io

    sig, argv, seen = getattr(signal, sys.argv[1]), sys.argv[2:], []

    def stop_after_two(real):
        def wrapped(*args, **kwargs):
            real(*args, **kwargs)
            seen.append(1)
            if len(seen) == 2:
                os.kill(os.getpid(), sig)
        return wrapped

    io.VideoWriter.write = stop_after_two(io.VideoWriter.write)
    apply.write_image = stop_after_two(apply.write_image)
    from edgematte.edge.cli import main
    sys.exit(main(argv))
''')


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_leave_no_temporaries(tmp_path, model, sig):
    clip = _video(tmp_path / "clip.mp4", frames=6)
    stopper = tmp_path / "stopper.py"
    stopper.write_text(STOPPER)
    for verb in ("mask", "cutout"):  # a .clip.*.tmp.mp4 video, a .clip.*.tmp/ frame folder
        out = tmp_path / verb
        run = subprocess.run([sys.executable, str(stopper), sig, verb, str(clip), "-o", str(out), "-m", str(model),
                              "--no-progress"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 128 + getattr(signal, sig), run.stderr
        assert "stopped by " + sig in run.stderr and "Traceback" not in run.stderr
        assert not out.exists() or os.listdir(out) == [], os.listdir(out)


# -- the folder swap --------------------------------------------------------------------------------
@pytest.mark.parametrize("exchange", [True, False])
def test_owned_folder_swaps_whole_and_keeps_other_files(tmp_path, monkeypatch, exchange):
    if not exchange:  # systems without renameat2 RENAME_EXCHANGE: two renames
        monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)
    target = tmp_path / "set"
    with outputs.owned_folder(target, "export", keep_foreign=True, claimed=["a.bin"]) as stage:
        (stage / "a.bin").write_text("one")
        (stage / "b.bin").write_text("one")
    (target / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError):  # a failed rebuild leaves the old set untouched, nothing beside it
        with outputs.owned_folder(target, "export", keep_foreign=True, claimed=["a.bin"]) as stage:
            (stage / "a.bin").write_text("half")
            raise RuntimeError("killed")
    assert _snapshot(target) == {outputs.MANIFEST: (target / outputs.MANIFEST).read_bytes(), "a.bin": b"one",
                                 "b.bin": b"one", "notes.txt": b"mine"}
    assert sorted(os.listdir(tmp_path)) == ["set"]
    with outputs.owned_folder(target, "export", keep_foreign=True, claimed=["a.bin"]) as stage:
        (stage / "a.bin").write_text("two")
    files = _snapshot(target)
    assert files["a.bin"] == b"two" and files["notes.txt"] == b"mine" and "b.bin" not in files
    assert sorted(os.listdir(tmp_path)) == ["set"]
    (target / "a.bin").write_text("edited by hand")  # not the kit's any more: a rebuild at that name is refused
    with pytest.raises(outputs.OutputError, match="a.bin"):
        with outputs.owned_folder(target, "export", keep_foreign=True, claimed=["a.bin"]):
            pass
    assert (target / "a.bin").read_text() == "edited by hand"


def test_a_manifest_cannot_make_the_kit_delete_outside_its_folder(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    target = tmp_path / "set"
    with outputs.owned_folder(target, "dump") as stage:
        (stage / "a.bin").write_text("one")
    manifest = json.loads((target / outputs.MANIFEST).read_text())
    info = victim.stat()
    manifest["files"]["../victim.txt"] = {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
    (target / outputs.MANIFEST).write_text(json.dumps(manifest))
    assert "../victim.txt" not in outputs.owned_files(target)
    with outputs.owned_folder(target, "dump") as stage:
        (stage / "a.bin").write_text("two")
    assert victim.read_text() == "mine" and (target / "a.bin").read_text() == "two"


def test_owned_folder_through_a_link_keeps_the_link(tmp_path):
    real, link = tmp_path / "disk" / "set", tmp_path / "set"
    real.mkdir(parents=True)
    link.symlink_to(real)
    for text in ("one", "two"):
        with outputs.owned_folder(link, "dump") as stage:
            (stage / "a.bin").write_text(text)
    assert link.is_symlink() and (real / "a.bin").read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["disk", "set"] and sorted(os.listdir(tmp_path / "disk")) == ["set"]


# -- train ------------------------------------------------------------------------------------------
def test_train_refuses_an_existing_run_without_resume_and_another_architecture_with_it(tmp_path):
    pytest.importorskip("torch")
    from edgematte.edge.errors import EdgematteError
    from edgematte.train.trainer import TrainConfig, fit

    run = tmp_path / "r1"
    run.mkdir()
    (run / "config.json").write_text(TrainConfig(model="mbv2_unet_sod", data=["d"], out=str(run),
                                                 size=64).to_json())
    (run / "best.pt").write_bytes(b"weights")
    with pytest.raises(outputs.OutputError, match="--resume"):
        fit(TrainConfig(model="mbv2_unet_sod", data=["d"], out=str(run), size=64))
    with pytest.raises(EdgematteError, match="architecture u2netp"):
        fit(TrainConfig(model="u2netp", data=["d"], out=str(run), size=64), resume=True)
    with pytest.raises(EdgematteError, match="--size 96"):
        fit(TrainConfig(model="mbv2_unet_sod", data=["d"], out=str(run), size=96), resume=True)
    assert (run / "best.pt").read_bytes() == b"weights"


# -- export -----------------------------------------------------------------------------------------
def test_export_swaps_its_set_whole_and_keeps_other_files(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    from edgematte.export import api

    torch.set_num_threads(2)
    out = tmp_path / "out"
    out.mkdir()
    args = ["export", "u2netp", "--untrained", "-o", str(out), "--size", "64", "64", "--precision", "fp32",
            "--images", "synthetic", "--image-count", "1"]
    (out / "model.onnx").write_bytes(b"someone else's")  # at a name the export needs: refused before any work
    assert main(args) == 1
    _one_error(capsys, "model.onnx")
    (out / "model.onnx").unlink()
    (out / "notes.txt").write_text("mine")
    assert main(args) == 0
    first = _snapshot(out)
    assert {"model.onnx", "model_fp32.xml", "model_fp32.bin", api.REPORT_NAME, outputs.MANIFEST,
            "notes.txt"} == set(first)

    def killed(*a, **k):
        raise KeyboardInterrupt  # a stop after the new ONNX and IR exist, before the report
    monkeypatch.setattr(api, "_check_parity", killed)
    assert main(args) == 130
    assert _snapshot(out) == first and sorted(os.listdir(tmp_path)) == ["out"]  # old set whole, nothing beside
    monkeypatch.undo()
    assert main(args + ["--name", "other"]) == 0
    names = set(_snapshot(out))
    assert names == {"other.onnx", "other_fp32.xml", "other_fp32.bin", api.REPORT_NAME, outputs.MANIFEST,
                     "notes.txt"}, names  # the old set went whole; the file it did not write stayed
    assert (out / "notes.txt").read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["out"]
