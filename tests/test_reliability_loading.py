"""Loading refuses what would give silent wrong results or internal errors: non-finite weights, an IR card without
its weights hash, malformed or unbounded cards, empty model names; eval checks --json first; full disks and Ctrl-C
at start-up are one line."""
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_tiny import build_ir
from edgematte.edge.card import ModelCard, save_ir
from edgematte.edge.card_schema import MAX_CARD_BYTES, MAX_CARD_DEPTH
from edgematte.edge.errors import EdgematteError, InputError, ModelFileError
from edgematte.edge.runtime import load_model

VALID = {"name": "m", "task": "saliency", "arch": "tiny"}


def _one_line(exc: BaseException, *parts: str) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    for part in parts:
        assert part in text, (part, text)
    return text


# -- non-finite checkpoint weights ----------------------------------------------------------------
@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    """A tiny kit checkpoint, one NaN in a conv weight and one Inf in a later tensor, plain and compact."""
    torch = pytest.importorskip("torch")
    from edgematte.train.checkpoint import card_for, save_checkpoint
    from edgematte.train.models import create_model

    torch.manual_seed(0)
    model = create_model("mbv2_unet_sod", width=0.35, decoder_channels=[16, 16, 8, 8, 8], input_size=[32, 32]).eval()
    names = [n for n, p in model.named_parameters() if p.dim() >= 2]
    folder = tmp_path_factory.mktemp("poisoned")
    with torch.no_grad():
        dict(model.named_parameters())[names[1]].view(-1)[0] = float("nan")
        dict(model.named_parameters())[names[4]].view(-1)[0] = float("inf")
    paths = {}
    for compact in (False, True):
        path = folder / ("compact.pt" if compact else "plain.pt")
        save_checkpoint(str(path), model, card_for(model), compact=compact)
        paths[compact] = path
    return paths, names[1]


@pytest.mark.parametrize("compact", [False, True])
def test_non_finite_checkpoint_refused_at_load(poisoned, compact: bool) -> None:
    from edgematte.train.checkpoint import load_checkpoint

    paths, first_bad = poisoned
    with pytest.raises(ModelFileError) as info:
        load_checkpoint(str(paths[compact]))
    _one_line(info.value, str(paths[compact]), first_bad, "non-finite", "1 more")
    with pytest.raises(ModelFileError) as info:  # the runtime's checkpoint loader says the same
        load_model(str(paths[compact]))
    _one_line(info.value, first_bad)


def test_export_refuses_non_finite_weights_with_the_same_line(poisoned, tmp_path: Path) -> None:
    from edgematte.export.api import export_model

    paths, first_bad = poisoned
    with pytest.raises(ModelFileError) as info:
        export_model(str(paths[False]), str(tmp_path / "out"))
    text = _one_line(info.value, first_bad, "non-finite")
    assert "differs" not in text and not (tmp_path / "out").exists()


def test_training_init_refuses_non_finite_weights(poisoned) -> None:
    """train --init copies weights by name; NaN ones would make every loss NaN from the first step."""
    import torch

    from edgematte.train.models import create_model
    from edgematte.train.trainer import _init_weights

    paths, first_bad = poisoned
    model = create_model("mbv2_unet_sod", width=0.35, decoder_channels=[16, 16, 8, 8, 8], input_size=[32, 32])
    with pytest.raises(ModelFileError) as info:
        _init_weights(model, torch.load(str(paths[False]), weights_only=True), str(paths[False]))
    _one_line(info.value, str(paths[False]), first_bad)


def test_finite_checkpoint_still_loads(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from edgematte.train.checkpoint import card_for, load_checkpoint, save_checkpoint
    from edgematte.train.models import create_model

    model = create_model("mbv2_unet_sod", width=0.35, decoder_channels=[16, 16, 8, 8, 8], input_size=[32, 32])
    save_checkpoint(str(tmp_path / "ok.pt"), model, card_for(model))
    loaded, _ = load_checkpoint(str(tmp_path / "ok.pt"))
    assert all(bool(torch.isfinite(t).all()) for t in loaded.state_dict().values() if t.is_floating_point())


@pytest.fixture(scope="module")
def checkpoint_dict(tmp_path_factory):
    """A finite tiny kit checkpoint as the dict torch.load returns, to make damaged variants of."""
    torch = pytest.importorskip("torch")
    from edgematte.train.checkpoint import card_for, save_checkpoint
    from edgematte.train.models import create_model

    model = create_model("mbv2_unet_sod", width=0.35, decoder_channels=[16, 16, 8, 8, 8], input_size=[32, 32])
    path = tmp_path_factory.mktemp("ckdict") / "ok.pt"
    save_checkpoint(str(path), model, card_for(model))
    return torch.load(str(path), weights_only=True)


def _first_weight(ckpt) -> str:
    return next(k for k, v in ckpt["state_dict"].items() if v.dim() >= 2)


DAMAGED_CHECKPOINTS = {
    "config_list": (lambda c: c.update(config=[1, 2]), "a mapping expected"),
    "card_task": (lambda c: c["card"].update(task="trimap", output={}), "task trimap"),
    "complex": (lambda c: c["state_dict"].update({_first_weight(c): c["state_dict"][_first_weight(c)].to(
        __import__("torch").complex64)}), "complex"),
    "empty_compact": (lambda c: c.update(weights_codec="int8-per-channel", qweights={
        "w": __import__("torch").zeros(0, dtype=__import__("torch").int8)}, qscales={"w": __import__("torch").zeros(0)}),
        "damaged compact"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGED_CHECKPOINTS))
def test_damaged_checkpoint_is_one_line(checkpoint_dict, tmp_path: Path, kind: str) -> None:
    import copy

    import torch

    from edgematte.train.checkpoint import load_checkpoint

    damage, words = DAMAGED_CHECKPOINTS[kind]
    ckpt = copy.deepcopy(checkpoint_dict)
    damage(ckpt)
    path = tmp_path / (kind + ".pt")
    torch.save(ckpt, str(path))
    with pytest.raises(ModelFileError) as info:
        load_checkpoint(str(path))
    _one_line(info.value, str(path), words)


# -- the IR's weights hash ------------------------------------------------------------------------
def test_kit_ir_without_weights_hash_is_refused(tmp_path: Path) -> None:
    xml = build_ir(tmp_path, with_hash=False)
    with pytest.raises(ModelFileError) as info:
        load_model(xml)
    _one_line(info.value, str(xml), "weights_sha256", "tiny.bin")


def test_ir_without_card_loads_with_a_given_card(tmp_path: Path) -> None:
    """An IR from elsewhere (no edgematte card) is not a kit IR: it loads with the card the caller supplies."""
    import numpy as np

    from edge_tiny import IR_INPUT

    xml = build_ir(tmp_path, with_card=False)
    card = ModelCard(name="foreign", task="saliency", arch="tiny", input_size=[64, 48], input=dict(IR_INPUT))
    alpha = load_model(xml, card=card).predict(np.full((20, 30, 3), 128, np.uint8))
    assert alpha.shape == (20, 30)


# -- card fields ----------------------------------------------------------------------------------
BAD_FIELDS = [
    ("input_size", [224], "input_size"), ("input_size", ["a", "b"], "input_size"), ("input_size", [0, 64], "input_size"),
    ("input_size", [True, 64], "input_size"), ("input_size", "big", "input_size"), ("dynamic", "yes", "dynamic"),
    ("input", "u8", "input"), ("input", {"layout": "HWC"}, "input.layout"), ("input", {"dtype": 8}, "input.dtype"),
    ("input", {"normalised": 1}, "input.normalised"),
    ("normalisation", {"mean": [1]}, "normalisation.mean"), ("normalisation", {"std": [1, 0, 1]}, "normalisation.std"),
    ("normalisation", {"color": "XYZ"}, "normalisation.color"), ("normalisation", [1, 2], "normalisation"),
    ("output", {"channels": "two"}, "output.channels"), ("output", {"channels": 3}, "output.channels"),
    ("precision", 16, "precision"), ("prune", [1], "prune"), ("weights_sha256", "abc", "weights_sha256"),
    ("tools", "x", "tools"), ("metrics", None, "metrics"), ("notes", 5, "notes"), ("config", [], "config"),
    ("format", 99, "format"), ("format", "1", "format"), ("name", ["x"], "name"), ("arch", "", "arch"),
    ("encoder", 3, "encoder"), ("source_sha256", 7, "source_sha256"),
]


@pytest.mark.parametrize("key,value,field", BAD_FIELDS, ids=["{}={}".format(k, json.dumps(v)) for k, v, _ in BAD_FIELDS])
def test_bad_card_field_is_one_line_naming_file_and_field(key, value, field) -> None:
    with pytest.raises(ModelFileError) as info:
        ModelCard.from_json(json.dumps(dict(VALID, **{key: value})), source="m.xml")
    _one_line(info.value, "m.xml", "'{}'".format(field))


def test_card_nested_too_deep_or_too_big_is_one_line() -> None:
    deep = '{"name": "m", "task": "alpha", "arch": "a", "config": {"x": ' + "[" * 50000 + "]" * 50000 + "}}"
    with pytest.raises(ModelFileError) as info:
        ModelCard.from_json(deep, source="m.xml")
    _one_line(info.value, "m.xml", "nested deeper than {}".format(MAX_CARD_DEPTH))
    nested = [1]
    for _ in range(MAX_CARD_DEPTH + 1):
        nested = [nested]
    shallow_but_deep = dict(VALID, metrics={"a": nested})
    with pytest.raises(ModelFileError, match="nested deeper"):
        ModelCard.from_dict(shallow_but_deep, source="ckpt.pt")  # checkpoint cards arrive as dicts
    with pytest.raises(ModelFileError) as info:
        ModelCard.from_json(json.dumps(dict(VALID, notes="x" * MAX_CARD_BYTES)), source="m.xml")
    _one_line(info.value, "m.xml", "bytes")


def test_real_cards_pass_validation() -> None:
    """The shipped zoo cards and a checkpoint's card are valid: the checks refuse only what is wrong."""
    from edgematte.edge._ov import Core
    from edgematte.edge.card import _rt_info_text
    from edgematte.edge.zoo import list_zoo, path_for

    for name in list_zoo():
        text = _rt_info_text(Core().read_model(str(path_for(name))))
        assert ModelCard.from_json(text, source=name).name
    ModelCard.from_dict(ModelCard(name="t", task="trimap", arch="a", prune={"channels": {}}).to_dict())


def test_dynamic_card_on_a_static_model_is_refused(tmp_path: Path) -> None:
    from edgematte.edge._ov import Core, ov
    from edgematte.edge.card import RT_INFO_PATH

    src = build_ir(tmp_path / "src")
    model = Core().read_model(str(src))
    card = json.loads(ModelCard.read_rt_info(model).to_json())
    card["dynamic"] = True
    model.set_rt_info(json.dumps(card), RT_INFO_PATH)
    xml = tmp_path / "dyn.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)  # same .bin, so the recorded hash still holds
    with pytest.raises(ModelFileError) as info:
        load_model(xml)
    _one_line(info.value, str(xml), "dynamic", "[1, 64, 48, 3]")
    from edgematte.edge.bundle import make_bundle

    out = tmp_path / "b.tar.gz"
    with pytest.raises(ModelFileError) as info:  # bundle checks the same, naming the user's file, not its copy
        make_bundle([str(xml)], str(out))
    assert str(info.value).startswith(str(xml) + ":") and "dynamic" in str(info.value)
    assert not out.exists() and sorted(os.listdir(str(tmp_path))) == ["dyn.bin", "dyn.xml", "src"]


def test_card_name_with_a_line_break_is_refused() -> None:
    with pytest.raises(ModelFileError) as info:
        ModelCard.from_json(json.dumps(dict(VALID, name="a\nb")), source="m.xml")
    _one_line(info.value, "m.xml", "'name'", "one line")


def test_foreign_spec_nested_too_deep_or_too_big_is_one_line(tmp_path: Path) -> None:
    from edgematte.edge.foreign import MAX_SPEC_BYTES, load_spec

    deep = tmp_path / "deep.json"
    deep.write_text('{"input_size": ' + "[" * 50000 + "]" * 50000 + "}")
    with pytest.raises(ModelFileError) as info:
        load_spec(str(deep))
    _one_line(info.value, str(deep), "nested")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_SPEC_BYTES + 1))
    with pytest.raises(ModelFileError) as info:
        load_spec(str(big))
    _one_line(info.value, str(big), "bytes")


# -- the model argument ---------------------------------------------------------------------------
@pytest.mark.parametrize("value,words", [("", "empty"), ("   ", "empty"), (None, "no model given"),
                                         (3, "path or a zoo name")])
def test_empty_or_missing_model_is_one_clear_line(value, words: str) -> None:
    with pytest.raises(ModelFileError) as info:
        load_model(value)
    text = _one_line(info.value, words)
    assert "'.'" not in text and "None" not in text and not text.startswith(".:")


def test_zoo_name_with_a_line_break_is_one_line() -> None:
    with pytest.raises(ModelFileError) as info:
        load_model("sod\nx")
    _one_line(info.value, "not installed", "'sod\\nx'")


def test_explicit_empty_model_option_is_an_error_not_the_default(tmp_path: Path, monkeypatch, capsys) -> None:
    import cv2
    import numpy as np

    import edgematte.edge.cli as cli

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    code = cli.main(["mask", "-m", "", str(image), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "empty" in err[0], err
    assert not (tmp_path / "out").exists()


def test_folder_as_model_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        load_model(tmp_path)
    _one_line(info.value, str(tmp_path), "is a folder, not a model file")


# -- eval --json is checked before the evaluation ---------------------------------------------------
@pytest.mark.parametrize("where", ["folder", "under_a_file", "trailing_slash"])
def test_eval_json_path_checked_before_evaluating(tmp_path: Path, monkeypatch, capsys, where: str) -> None:
    import edgematte.edge.cli as cli
    import edgematte.edge.evaluate as evaluate_module

    ran = []
    monkeypatch.setattr(evaluate_module, "evaluate", lambda *a, **k: ran.append(1))
    monkeypatch.setattr(evaluate_module, "load_predictor", lambda *a, **k: ran.append(1))
    (tmp_path / "file").write_text("x")
    target = {"folder": str(tmp_path), "under_a_file": str(tmp_path / "file" / "r.json"),
              "trailing_slash": str(tmp_path / "new") + "/"}[where]
    code = cli.main(["eval", "sod", str(tmp_path), "--json", target])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and ran == [] and len(err) == 1 and "--json" in err[0], err
    assert (tmp_path / "file").read_text() == "x"


def test_check_output_file_accepts_a_new_file_in_a_new_folder(tmp_path: Path) -> None:
    from edgematte.edge.outputs import check_output_file

    assert check_output_file(tmp_path / "a" / "b" / "r.json", "--json") == tmp_path / "a" / "b" / "r.json"
    assert not (tmp_path / "a").exists() and os.listdir(str(tmp_path)) == []  # the probe leaves nothing
    with pytest.raises(InputError, match="--json"):
        check_output_file("", "--json")


# -- a full disk while saving ---------------------------------------------------------------------
def _tiny_model():
    from edgematte.edge._ov import ov

    param = ov.opset8.parameter([1, 4, 4, 3], ov.Type.u8, name="image")
    return ov.Model([ov.opset8.convert(param, "f32")], [param], "tiny")


@pytest.mark.parametrize("error", [RuntimeError("basic_ios::clear: iostream error"),
                                   OSError(errno.ENOSPC, "No space left on device")], ids=["openvino", "oserror"])
def test_full_disk_while_saving_an_ir_is_one_line(tmp_path: Path, monkeypatch, error) -> None:
    from edgematte.edge import _ov
    from edgematte.edge.save_errors import SaveError

    def full(model, path, compress_to_fp16=True):
        Path(path).write_bytes(b"partial")
        raise error

    monkeypatch.setattr(_ov.ov, "save_model", full)
    xml = tmp_path / "m_int8.xml"
    with pytest.raises(SaveError) as info:
        save_ir(_tiny_model(), str(xml), ModelCard(name="m", task="saliency", arch="tiny"))
    _one_line(info.value, str(xml), "no space left on device")
    assert isinstance(info.value, EdgematteError) and os.listdir(str(tmp_path)) == []  # nothing half-written


def test_other_save_failures_pass_through(tmp_path: Path, monkeypatch) -> None:
    """Only write failures are mapped; a bug stays visible as what it is."""
    from edgematte.edge import _ov

    monkeypatch.setattr(_ov.ov, "save_model", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("bad op")))
    with pytest.raises(RuntimeError, match="bad op"):
        save_ir(_tiny_model(), str(tmp_path / "m.xml"), ModelCard(name="m", task="saliency", arch="tiny"))


def test_nested_saves_name_the_outer_path(tmp_path: Path) -> None:
    from edgematte.edge.save_errors import SaveError, saving

    with pytest.raises(SaveError) as info:
        with saving(tmp_path / "model_fp32.xml", "the IR"):
            with saving(tmp_path / ".stage" / ".pending.xml", "the IR"):
                raise OSError(errno.ENOSPC, "No space left on device")
    _one_line(info.value, str(tmp_path / "model_fp32.xml"), "no space left on device")
    assert ".pending" not in str(info.value)


# -- Ctrl-C while starting ------------------------------------------------------------------------
def test_interrupt_while_discovering_verbs_is_one_line(monkeypatch, capsys) -> None:
    import edgematte.edge.cli as cli

    def interrupted(argv=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        code = cli.main(["--version"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main() while the verbs were discovered")
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["edgematte: interrupted"]


def test_interrupt_while_importing_in_the_console_command_exits_130(tmp_path: Path) -> None:
    """As the console script (argv[0] edgematte), SIGINT during the package's imports is one line and exit 130."""
    code = ("import sys, time; sys.argv[0] = '/usr/bin/edgematte'; import edgematte.edge; "
            "print('ready', flush=True); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.decode().strip().splitlines() == ["edgematte: interrupted"], err


def test_library_use_keeps_pythons_interrupt_handler() -> None:
    import edgematte.edge  # noqa: F401 - imported by a program, not the command

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler



# -- a full disk during export (end to end) -------------------------------------------------------
@pytest.fixture(scope="module")
def finite_checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from edgematte.train.checkpoint import card_for, save_checkpoint
    from edgematte.train.models import create_model

    model = create_model("mbv2_unet_sod", width=0.35, decoder_channels=[16, 16, 8, 8, 8], input_size=[32, 32])
    path = tmp_path_factory.mktemp("finite") / "ok.pt"
    save_checkpoint(str(path), model, card_for(model))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["onnx", "ir"])
def test_full_disk_during_export_names_the_file(finite_checkpoint: Path, tmp_path: Path, monkeypatch,
                                                 stage: str) -> None:
    pytest.importorskip("onnx")
    from edgematte.edge import _ov
    from edgematte.edge.save_errors import SaveError
    from edgematte.export import to_onnx
    from edgematte.export.api import export_model

    if stage == "onnx":
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(to_onnx.onnx, "save_model", full)
    else:
        def full(model, path, compress_to_fp16=True):
            raise RuntimeError("Exception from src/core/src/pass/serialize.cpp:1\nbasic_ios::clear: iostream error")

        monkeypatch.setattr(_ov.ov, "save_model", full)
    out = tmp_path / "out"
    with pytest.raises(SaveError) as info:
        export_model(str(finite_checkpoint), str(out), formats=("onnx", "ir"), precisions=("fp32",))
    wanted = out / ("model.onnx" if stage == "onnx" else "model_fp32.xml")
    _one_line(info.value, str(wanted), "no space left on device")
    assert os.listdir(str(tmp_path)) == [] or not [p for p in out.iterdir() if p.name.startswith(".")]  # no leftovers


@pytest.mark.parametrize("damage", ["tampered_bin", "no_hash"])
def test_quantize_checks_the_source_weights(tmp_path: Path, damage: str) -> None:
    """INT8 of a damaged .bin would carry a fresh, valid hash: quantize refuses the source first."""
    pytest.importorskip("nncf")
    from edgematte.compress.quantize import quantize_ir

    xml = build_ir(tmp_path / "src", with_hash=damage != "no_hash")
    if damage == "tampered_bin":
        data = bytearray(xml.with_suffix(".bin").read_bytes())
        data[-1] ^= 0xFF  # the last float constant: OpenVINO still reads the IR, only the hash can tell
        xml.with_suffix(".bin").write_bytes(bytes(data))
    out = tmp_path / "q" / "m_int8.xml"
    with pytest.raises(ModelFileError) as info:
        quantize_ir(str(xml), str(out))
    _one_line(info.value, str(xml), "weights_sha256" if damage == "no_hash" else "do not match")
    assert not out.exists()


def test_an_image_renamed_to_pt_is_not_called_pickled(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import cv2
    import numpy as np

    from edgematte.train.checkpoint import load_checkpoint

    path = tmp_path / "photo.pt"
    path.write_bytes(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    with pytest.raises(ModelFileError) as info:
        load_checkpoint(str(path))
    text = _one_line(info.value, str(path), "not a PyTorch checkpoint")
    assert "pickled" not in text


@pytest.mark.parametrize("source", ["", "folder"])
def test_export_source_empty_or_folder_is_one_clear_line(tmp_path: Path, source: str) -> None:
    pytest.importorskip("torch")
    from edgematte.export.api import load_source

    given = str(tmp_path) if source == "folder" else source
    with pytest.raises(InputError) as info:
        load_source(given, False)
    text = _one_line(info.value, "empty" if source == "" else "is a folder")
    assert not text.startswith(":")
