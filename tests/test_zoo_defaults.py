"""The shipped default models: self-describing, within the size budget, and still what ship.json says was measured."""
import json
from pathlib import Path

import numpy as np
import pytest

from edgematte.edge.commands import DEFAULT_MODEL, SUBJECT_MODEL, VERB_SUBJECT
from edgematte.edge.datasets import find_pairs
from edgematte.edge.evaluate import evaluate
from edgematte.edge.io import read_image
from edgematte.edge.runtime import load_model
from edgematte.edge.zoo import PACKAGE_DIR, list_zoo

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = list_zoo(str(PACKAGE_DIR))  # every model the package ships, defaults or not
BUDGET_BYTES = 25 * 1000 * 1000  # all shipped defaults together: the wheel a box installs


def _record(name: str) -> dict:
    return json.loads((PACKAGE_DIR / name / "ship.json").read_text())


def test_shipped_defaults_fit_the_budget():
    total = sum(p.stat().st_size for p in PACKAGE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                and p.suffix != ".py")
    assert total <= BUDGET_BYTES, "shipped zoo files take {:.2f} MB".format(total / 1e6)
    assert set(DEFAULT_MODEL.values()) <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_self_describing(name):
    record = _record(name)
    model = load_model(name)  # by zoo name; the .bin hash in the card is checked on load
    assert model.card.precision == record["chosen"].upper()
    assert list(model.card.input_size) == list(record["input_size"])
    assert model.card.source_sha256 == record["source_sha256"]
    image = read_image(str(sorted((ROOT / "calib_data").glob("*.jpg"))[0]))
    alpha = model.predict(image)
    assert alpha.shape == image.shape[:2] and alpha.dtype == np.float32
    assert alpha.min() < 0.2 and alpha.max() > 0.8  # a real image gets a real figure/ground split


@pytest.mark.shared
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_still_measures_what_ship_json_says(name, shared_dir):
    """Re-evaluate the installed IR on its validation images: the same file must give the numbers it shipped with."""
    record = _record(name)
    data = Path(record["validation"]["data"])
    data = data if data.is_absolute() and data.is_dir() else shared_dir / "data" / data.name
    pairs = find_pairs(str(data))
    stems = [p.stem for p in pairs]
    globs = record["validation"]["filter"]
    if globs:
        import fnmatch

        pairs = [p for p, s in zip(pairs, stems) if any(fnmatch.fnmatchcase(s, g) for g in globs)]
    assert len(pairs) == record["validation"]["images"]
    measured = evaluate(load_model(name), pairs, progress=False, sod=False).summary["mean"]
    shipped = record["summary"][record["chosen"]]["mean"]
    # Tolerance for other CPUs' kernels, far below a real regression: INT8 on AVX512-VNNI and on AVX2 rounds
    # differently; sod shipped on VNNI (duts-te-val IoU 0.6723) measures 0.6637 on AVX2, MAE within 1e-3.
    assert measured["mae"] == pytest.approx(shipped["mae"], abs=2e-3)
    assert measured["iou"] == pytest.approx(shipped["iou"], abs=1.5e-2)


def test_one_rule_picks_every_default():
    """Pictures of the subject (cutout, blur, replace) take the model that leads on people, the bare mask the general
    one."""
    assert set(VERB_SUBJECT) == set(DEFAULT_MODEL) == {"mask", "cutout", "blur", "replace"}
    assert {verb: SUBJECT_MODEL[VERB_SUBJECT[verb]][0] for verb in VERB_SUBJECT} == DEFAULT_MODEL
    assert DEFAULT_MODEL["mask"] == "sod" and {DEFAULT_MODEL[v] for v in ("cutout", "blur", "replace")} == {"portrait"}


@pytest.mark.shared
def test_the_people_default_leads_on_held_out_people(shared_dir):
    """The rule's premise, re-measured: on the held-out vikram_* people the people default is ahead of sod (IoU and
    boundary IoU), and on the validation ID photos (ecoreal_3*) it keeps jacket and hair (IoU above 0.95)."""
    from edgematte.edge.datasets import Subset

    portraits = find_pairs(str(shared_dir / "data" / "portraits"))
    people = DEFAULT_MODEL["cutout"]
    held_out = Subset(include=["vikram_*"], limit=60).apply(portraits)
    scores = {name: evaluate(load_model(name), held_out, progress=False, sod=False).summary["mean"]
              for name in (people, "sod")}
    assert scores[people]["iou"] > scores["sod"]["iou"] and scores[people]["boundary_iou"] > scores["sod"][
        "boundary_iou"], scores
    id_photos = Subset(include=["ecoreal_3*"], limit=20).apply(portraits)
    assert evaluate(load_model(people), id_photos, progress=False, sod=False).summary["mean"]["iou"] > 0.95
