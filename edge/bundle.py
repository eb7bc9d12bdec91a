"""Bundles for edge boxes: IRs + cards + a sha256 manifest + a self-test, packed as one .tar.gz, and their check.

A bundle holds, under one top folder:
  manifest.json         every other file's sha256 and size, the models (name, task, precision, input size), the
                        minimal runtime requirements and the self-test tolerance
  requirements.txt      what a box needs: edgematte==<the version that bundled it> (run.sh calls it) and its base
                        install (openvino, numpy, opencv-python-headless); its header says how to install the wheel
  run.sh                one line: run `edgematte mask` with the bundle's first model
  models/NAME/model.xml, model.bin, card.json
  selftest/input.png    a small image; selftest/NAME.png is each model's mask of it, made when bundling
With --ovms, the models are laid out as an OpenVINO Model Server repository instead: NAME/1/model.xml + .bin and
config.json at the top (run.sh still works, it points at NAME/1/model.xml).
`verify` on the box re-hashes every file (refusing tampered, truncated, missing or extra ones), then runs the
self-test image through each model on the box's device and compares with the recorded mask.
"""
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Dict, List, Sequence

import cv2
import numpy as np

from .card import sha256_file
from .errors import ModelFileError
from .io import atomic_path, read_image, write_image, write_text

MANIFEST = "manifest.json"
FORMAT = 1
REQUIREMENTS = ["openvino>=2022.3", "numpy", "opencv-python-headless"]  # the base install; edgematte comes first
PACKAGE = "edgematte"
SELFTEST_TOLERANCE = 4  # max |difference| in 8-bit mask levels allowed between devices/runtimes
SELFTEST_SIZE = (160, 224)  # (H, W) of the generated self-test image


class BundleError(ModelFileError):
    """A bundle is malformed, tampered with or truncated, or its self-test fails."""


def kit_version() -> str:
    """The installed edgematte version (BundleError when the package metadata is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        raise BundleError("bundle: the {} package is not installed (pip install .), so the bundle cannot name the "
                          "version its run.sh needs".format(PACKAGE)) from None


def requirements() -> List[str]:
    """What a box needs to run the bundle: this edgematte version, then its base install."""
    return ["{}=={}".format(PACKAGE, kit_version())] + REQUIREMENTS


def requirements_text(pins: Sequence[str]) -> str:
    """requirements.txt: a header on installing the edgematte wheel, then one requirement a line."""
    wheel = "{}-{}-py3-none-any.whl".format(PACKAGE, pins[0].split("==", 1)[1])
    return ("# run.sh calls `edgematte`: install the wheel of this exact version first, then the rest:\n"
            "#   pip wheel --no-deps -w . /path/to/edgematte   (on a machine with the source; makes {wheel})\n"
            "#   pip install {wheel} && pip install -r requirements.txt\n".format(wheel=wheel)
            + "\n".join(pins) + "\n")


def selftest_image(size: Sequence[int] = SELFTEST_SIZE) -> np.ndarray:
    """A deterministic BGR test card: textured background, a bright figure with soft edges."""
    h, w = int(size[0]), int(size[1])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    background = np.stack([40 + 30 * np.sin(xx / 7.0), 60 + 25 * np.cos(yy / 5.0), 50 + 20 * np.sin((xx + yy) / 9.0)],
                          axis=-1)
    dist = np.sqrt(((yy - 0.55 * h) / (0.32 * h)) ** 2 + ((xx - 0.5 * w) / (0.22 * w)) ** 2)
    alpha = np.clip((1.1 - dist) / 0.2, 0.0, 1.0)[..., None]
    figure = np.array([200.0, 180.0, 230.0], dtype=np.float32)
    return (background * (1 - alpha) + figure * alpha).clip(0, 255).astype(np.uint8)


def _model_name(model: str, taken: List[str]) -> str:
    path = Path(model)
    name = path.parent.name if path.name == "model.xml" else (path.stem if path.suffix else model)
    base, n = name, 2
    while name in taken:
        name, n = "{}_{}".format(base, n), n + 1
    return name


def _ir_pair(model: str) -> Path:
    """The .xml of MODEL: an IR path or an installed zoo name."""
    from .zoo import is_zoo_name, path_for

    path = Path(model)
    if not path.exists() and is_zoo_name(model):
        path = path_for(model)
    if path.suffix.lower() != ".xml" or not path.is_file():
        raise BundleError("{}: a bundle takes OpenVINO IRs (.xml + .bin) or zoo names".format(model))
    if not path.with_suffix(".bin").is_file():
        raise BundleError("{}: its weights file {} is missing".format(model, path.with_suffix(".bin").name))
    return path


def make_bundle(models: Sequence[str], out: str, ovms: bool = False, device: str = "CPU") -> Dict[str, Any]:
    """Pack the IRs (paths or zoo names) into the .tar.gz `out` with manifest and self-test; returns the manifest."""
    from .runtime import load_model

    if not models:
        raise BundleError("bundle: no models given")
    if not str(out).endswith((".tar.gz", ".tgz")):
        raise BundleError("{}: a bundle file name ends in .tar.gz".format(out))
    pins = requirements()
    top = os.path.basename(str(out))[: -len(".tar.gz") if str(out).endswith(".tar.gz") else -len(".tgz")]
    stage = tempfile.mkdtemp(prefix="edgematte-bundle-")
    try:
        root = Path(stage) / top
        image = selftest_image()
        write_image(str(root / "selftest" / "input.png"), image)
        entries = []  # type: List[Dict[str, Any]]
        names = []  # type: List[str]
        for model in models:
            xml = _ir_pair(model)
            name = _model_name(model, names)
            names.append(name)
            predictor = load_model(str(xml), device=device)  # checks the .bin against the card's hash
            folder = root / (name + "/1" if ovms else "models/" + name)
            folder.mkdir(parents=True)
            shutil.copyfile(str(xml), str(folder / "model.xml"))
            shutil.copyfile(str(xml.with_suffix(".bin")), str(folder / "model.bin"))
            write_text(str(folder / "card.json"), predictor.card.to_json() + "\n")
            write_image(str(root / "selftest" / (name + ".png")), _mask8(predictor.predict(image)))
            card = predictor.card
            entries.append({"name": name, "path": str((folder / "model.xml").relative_to(root)), "task": card.task,
                            "precision": card.precision, "input_size": list(card.input_size), "arch": card.arch})
        if ovms:
            config = {"model_config_list": [{"config": {"name": e["name"], "base_path": "/models/" + e["name"]}}
                                            for e in entries]}
            write_text(str(root / "config.json"), json.dumps(config, indent=1) + "\n")
        write_text(str(root / "requirements.txt"), requirements_text(pins))
        write_text(str(root / "run.sh"), '#!/bin/sh\n# usage: ./run.sh INPUT... -o OUTDIR [-d DEVICE]\n'
                                         'exec edgematte mask -m "$(dirname "$0")/{}" "$@"\n'.format(entries[0]["path"]))
        os.chmod(str(root / "run.sh"), 0o755)
        files = {str(p.relative_to(root)): {"sha256": sha256_file(str(p)), "bytes": p.stat().st_size}
                 for p in sorted(root.rglob("*")) if p.is_file()}
        manifest = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "layout": "ovms" if ovms else "models", "models": entries, "requirements": pins,
                    "selftest": {"input": "selftest/input.png", "tolerance": SELFTEST_TOLERANCE}, "files": files}
        write_text(str(root / MANIFEST), json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        with atomic_path(out) as tmp:
            with tarfile.open(tmp, "w:gz") as tar:
                tar.add(str(root), arcname=top)
        return manifest
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _mask8(alpha: np.ndarray) -> np.ndarray:
    """HxW 8-bit mask of an alpha (trimap: the foreground channel)."""
    if alpha.ndim == 3:
        alpha = alpha[..., -1]
    return np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)


def _safe_extract(bundle: str, dest: str) -> Path:
    """Extract the bundle's regular files and folders under dest (no links, no absolute or escaping paths)."""
    if not os.path.isfile(bundle):
        raise BundleError("{}: no such bundle file".format(bundle))
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            members = tar.getmembers()
            tops = {m.name.split("/")[0] for m in members}
            if len(tops) != 1:
                raise BundleError("{}: a bundle holds one top folder, found {}".format(bundle, len(tops)))
            for member in members:
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                    raise BundleError("{}: refusing member {!r} (absolute, escaping or not a plain file)".format(
                        bundle, member.name))
            for member in members:
                target = Path(dest) / member.name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with open(str(target), "wb") as handle:
                    shutil.copyfileobj(source, handle)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BundleError("{}: not a readable .tar.gz bundle ({})".format(bundle, str(exc).strip() or
                                                                          type(exc).__name__)) from None
    return Path(dest) / tops.pop()


def verify_bundle(bundle: str, device: str = "CPU") -> Dict[str, Any]:
    """Check every hash of the bundle and run its self-test on `device`; BundleError on the first problem."""
    from .runtime import load_model

    scratch = tempfile.mkdtemp(prefix="edgematte-verify-")
    try:
        root = _safe_extract(bundle, scratch)
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise BundleError("{}: no {} in the bundle".format(bundle, MANIFEST))
        try:
            manifest = json.loads(manifest_path.read_text())
            files = dict(manifest["files"])
            models = list(manifest["models"])
            tolerance = int(manifest["selftest"]["tolerance"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError("{}: malformed {} ({})".format(bundle, MANIFEST, exc)) from None
        present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {MANIFEST}
        missing, extra = sorted(set(files) - present), sorted(present - set(files))
        if missing:
            raise BundleError("{}: {} is listed in the manifest but missing".format(bundle, missing[0]))
        if extra:
            raise BundleError("{}: {} is not in the manifest (added after bundling?)".format(bundle, extra[0]))
        for name, entry in sorted(files.items()):
            path = root / name
            if path.stat().st_size != int(entry["bytes"]):
                raise BundleError("{}: {} has {} bytes, the manifest says {} (truncated or altered)".format(
                    bundle, name, path.stat().st_size, entry["bytes"]))
            if sha256_file(str(path)) != entry["sha256"]:
                raise BundleError("{}: {} does not match its sha256 in the manifest (altered)".format(bundle, name))
        image = read_image(str(root / manifest["selftest"]["input"]))
        results = []
        for entry in models:
            predictor = load_model(str(root / entry["path"]), device=device)
            got = _mask8(predictor.predict(image)).astype(np.int16)
            expected = cv2.imread(str(root / "selftest" / (entry["name"] + ".png")), cv2.IMREAD_GRAYSCALE)
            if expected is None or expected.shape != got.shape:
                raise BundleError("{}: self-test mask of {} is missing or has the wrong size".format(
                    bundle, entry["name"]))
            worst = int(np.abs(got - expected.astype(np.int16)).max())
            if worst > tolerance:
                raise BundleError("{}: self-test of {} on {} differs by {} levels from the bundled mask (limit {})"
                                  .format(bundle, entry["name"], device, worst, tolerance))
            results.append({"name": entry["name"], "max_diff_levels": worst, "precision": entry["precision"]})
        return {"bundle": bundle, "files": len(files), "models": results, "device": device}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def register(subparsers: Any) -> None:
    """Add the `bundle` and `verify` verbs."""
    import argparse

    p = subparsers.add_parser("bundle", help="pack IRs, cards, a sha256 manifest and a self-test into a .tar.gz",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="IR .xml files or zoo names")
    p.add_argument("-o", "--out", required=True, metavar="FILE.tar.gz", help="bundle file to write")
    p.add_argument("--ovms", action="store_true", help="lay the models out as an OpenVINO Model Server repository "
                                                       "(NAME/1/model.xml + config.json)")
    p.add_argument("-d", "--device", default="CPU", help="device that makes the self-test masks (default CPU)")
    p.set_defaults(func=_run_bundle)
    v = subparsers.add_parser("verify", help="check a bundle's hashes and run its self-test on this box",
                              description="Re-hash every file of a bundle against its manifest, then run the "
                                          "self-test image through each model and compare with the bundled mask.")
    v.add_argument("bundle", metavar="BUNDLE", help="a .tar.gz written by `edgematte bundle`")
    v.add_argument("-d", "--device", default="CPU", help="device to run the self-test on (default CPU)")
    v.set_defaults(func=_run_verify)


def _run_bundle(args: Any) -> int:
    manifest = make_bundle(args.models, args.out, ovms=args.ovms, device=args.device)
    print("wrote {} ({} models, {} files, {:.2f} MB)".format(args.out, len(manifest["models"]), len(manifest["files"]),
                                                             os.path.getsize(args.out) / 1e6))
    return 0


def _run_verify(args: Any) -> int:
    result = verify_bundle(args.bundle, device=args.device)
    for model in result["models"]:
        print("ok  {} ({}): self-test within {} levels on {}".format(model["name"], model["precision"],
                                                                      model["max_diff_levels"], result["device"]))
    print("verified {}: {} files match the manifest".format(args.bundle, result["files"]))
    return 0


__all__ = ["make_bundle", "verify_bundle", "selftest_image", "requirements", "BundleError", "register"]
