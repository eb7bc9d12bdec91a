"""The recipes' `edgematte train` commands parse with the current CLI and hold the evaluation portraits out."""
import re
import shlex
from pathlib import Path

import pytest

from edgematte.edge.cli import build_parser
from edgematte.train.cli import config_from_args

RECIPES = Path(__file__).resolve().parents[1] / "train" / "recipes"
VARS = {"DATA": "/data", "RUN": "/runs/r", "EPOCHS": "3", "BATCH": "8", "INIT": "/runs/sod/best.pt",
        "CKPT": "/runs/sod/best.pt", "OUT": "/runs/p", "RATIO": "0.5", "PEOPLE": "/runs/people", "LR": "3e-4",
        "SEED": "2", "WARMUP": "50", "CHUNK": "400", "MODEL": "mbv2_unet_sod", "SIZE": "256",
        "LOSS": "bce_iou"}


def recipe_command(script: str, variables=None):
    """The `edgematte train ...` command of a recipe (backslash continuations joined, variables filled in); a
    recipe that trains through another one (VAR=... bash other.sh ARGS) gives the other's command with its
    variables set and ARGS appended."""
    variables = dict(VARS, **(variables or {}))
    text = (RECIPES / script).read_text().replace("\\\n", " ")
    fill = lambda line: re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], line)  # noqa: E731
    line = next((l for l in text.splitlines() if l.strip().startswith("edgematte train")), None)
    if line is not None:
        line = line.replace("${EXTRA[@]+\"${EXTRA[@]}\"}", "").replace('"$@"', "")
        return shlex.split(fill(line))[1:]
    line = next(l for l in text.splitlines() if re.search(r"\bbash .*\.sh", l))
    words = shlex.split(fill(line.replace('"$(dirname "$0")/', '"').replace(' "$@"', "")))
    at = next(i for i, w in enumerate(words) if w == "bash")
    inner = dict(w.split("=", 1) for w in words[:at])
    return recipe_command(words[at + 1], inner) + words[at + 2:]


@pytest.mark.parametrize("script", ["sod.sh", "sod_hybrid.sh", "portrait.sh", "portrait_mbv2.sh",
                                    "portrait_people.sh", "portrait_pruned.sh"])
def test_recipe_parses_and_resumes(script):
    args = build_parser().parse_args(recipe_command(script) + ["--max-steps", "10"])
    config = config_from_args(args)
    assert args.resume and config.max_steps == 10 and config.out in ("/runs/r", "/runs/p/run") and config.epochs == 3
    assert config.model in ("mbv2_unet_sod", "modnet")


@pytest.mark.parametrize("script,model", [("portrait.sh", "modnet"), ("portrait_mbv2.sh", "mbv2_unet_sod")])
def test_portrait_recipe_holds_vikram_out(script, model):
    from edgematte.edge.datasets import Pair, filter_pairs

    config = config_from_args(build_parser().parse_args(recipe_command(script)))
    names = ["vikram_001.jpg", "ecoreal_3abc.jpg", "ecoreal_0abc.jpg"]
    pairs = [Pair(image=Path("/p/images") / n) for n in names]
    assert [p.stem for p in filter_pairs(pairs, config.include, config.exclude)] == ["ecoreal_0abc"]
    assert [p.stem for p in filter_pairs(pairs, config.val_include, config.val_exclude)] == ["ecoreal_3abc"]
    assert config.composite == ["/data/duts-tr"] and config.model == model


def test_hybrid_recipe_uses_the_hybrid_loss_from_the_first_stage():
    config = config_from_args(build_parser().parse_args(recipe_command("sod_hybrid.sh")))
    assert config.loss == "bce_iou" and config.init == "/runs/sod/best.pt" and config.model == "mbv2_unet_sod"
    assert config.lr == 3e-4 and config.seed == 2  # LR and SEED reach the command (third stage: LR=3e-4)


def test_compress_recipe_parses():
    text = (RECIPES / "compress_sod.sh").read_text().replace("\\\n", " ")
    line = next(l for l in text.splitlines() if l.strip().startswith("edgematte pipeline"))
    line = re.sub(r"\$(\w+)", lambda m: VARS[m.group(1)], line.replace('"$@"', ""))
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert args.checkpoint == "/runs/sod/best.pt" and args.distill and args.ratio == 0.5 and args.train


@pytest.mark.parametrize("script", ["portrait_people.sh", "portrait_pruned.sh"])
def test_people_recipes_hold_vikram_and_their_validation_out(script):
    from edgematte.edge.datasets import Pair, filter_pairs

    config = config_from_args(build_parser().parse_args(recipe_command(script)))
    names = ["vikram_10.jpg", "ecoreal_3abc.jpg", "ecoreal_0abc.jpg", "ILSVRC2012_test_00000015.jpg",
             "n02085620_1234.jpg"]
    pairs = [Pair(image=Path("/p/images") / n) for n in names]
    assert [p.stem for p in filter_pairs(pairs, config.include, config.exclude)] == ["ecoreal_0abc", "n02085620_1234"]
    assert [p.stem for p in filter_pairs(pairs, config.val_include, config.val_exclude)] == [
        "ecoreal_3abc", "ILSVRC2012_test_00000015"]
    assert config.data.count("/runs/people") == 2 and config.composite_zoom == 0.35 and config.size == 256
    if script == "portrait_pruned.sh":  # trains through portrait_people.sh, from the pruned model, distilled
        assert config.init == "/runs/p/prune/pruned.pt" and config.distill == "/runs/sod/best.pt"
        assert config.lr == 2e-4 and config.warmup_steps == 20


def test_portrait_lite0_recipe_trains_the_lite_unet_from_the_new_sod():
    text = (RECIPES / "portrait_lite0.sh").read_text()
    defaults = dict(re.findall(r"^(\w+)=\$\{\1:-([^}]*)\}", text, flags=re.M))  # the script's own defaults
    config = config_from_args(build_parser().parse_args(recipe_command("portrait_lite0.sh", defaults)))
    assert config.model == "lite0_unet_sod" and config.init == "sod" and config.size == 256 and config.epochs == 8
    assert config.data.count("/runs/people") == 2 and "vikram_*" in config.exclude


def test_matte_recipe_trains_the_lite_modnet_on_people_from_the_sod_encoder():
    text = (RECIPES / "matte_lite0.sh").read_text()
    defaults = dict(re.findall(r"^(\w+)=\$\{\1:-([^}]*)\}", text, flags=re.M))
    config = config_from_args(build_parser().parse_args(recipe_command("matte_lite0.sh", defaults)))
    assert config.model == "lite0_modnet" and config.loss == "modnet" and config.init == "sod"
    assert config.model_config == {"hr_channels": 16} and config.size == 256 and config.epochs == 8
    assert config.data.count("/runs/people") == 2 and "vikram_*" in config.exclude
