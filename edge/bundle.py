"""Bundles for edge boxes: IRs + cards + a sha256 manifest + a self-test, packed as one .tar.gz, and their check.

A bundle holds, under one top folder:
  manifest.json         every other file's sha256, size and mode, the models (name, task, precision, input size),
                        the minimal runtime requirements and the self-test tolerance; the archive's first file
  manifest.sig          with --sign KEY: an Ed25519 signature of manifest.json's exact bytes (edge/signing.py)
  requirements.txt      what a box needs: edgematte==<the version that bundled it> (run.sh calls it) and its base
                        install (openvino, numpy, opencv-python-headless); its header says how to install the wheel
  run.sh                one line: run `edgematte mask` with the bundle's first model
  models/NAME/model.xml, model.bin, card.json
  selftest/input.png    a small image; selftest/NAME.png is each model's mask of it, made when bundling
With --ovms, the models are laid out as an OpenVINO Model Server repository instead: NAME/1/model.xml + .bin and
config.json at the top (run.sh still works, it points at NAME/1/model.xml).
Every member is owned by uid/gid 0 with empty owner names (so `tar x` as root never hands a file to another user),
files are 0644 (run.sh 0755), folders 0755.
`verify` on the box streams the archive and checks every member against the manifest before writing anything
(edge/bundle_tar.py: names, types, owners, modes, sizes, sha256, duplicates, and no more data than the manifest
lists), checks that run.sh runs the first self-tested model, then unpacks only the models and self-test images and
runs the self-test image through each model on the box's device, comparing with the recorded mask. With --key PUB
it also checks the manifest's signature, so files and manifest rewritten together are refused; without a key a
signed bundle proves integrity but not origin, and an unsigned one says so.
"""
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Sequence, Set

import cv2
import numpy as np

from .bundle_tar import (DIR_MODE, FILE_MODE, MANIFEST, SCRIPT_MODE, SIGNATURE, BundleError, check_files, folders_of,
                         scan)
from .card import sha256_file
from .io import atomic_path, read_image, write_image, write_text
from .names import BUNDLE_NAME, as_model_name, is_model_name
from .signing import (PRIVATE_FILE, PUBLIC_FILE, key_id, load_private_key, load_public_key, make_key_pair, parse_signature,
                      signature_matches, sign)
from .verbs import add_verb

FORMAT = 2  # 2: modes in the manifest, root-owned members, manifest first, optional signature
REQUIREMENTS = ["openvino>=2022.3", "numpy", "opencv-python-headless"]  # the base install; edgematte comes first
PACKAGE = "edgematte"
SELFTEST_TOLERANCE = 4  # max |difference| in 8-bit mask levels allowed between devices/runtimes
SELFTEST_SIZE = (160, 224)  # (H, W) of the generated self-test image


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
    """A plain, unused model name for MODEL (its zoo name, folder or file stem), so it is safe as a folder name."""
    path = Path(model)
    name = as_model_name(path.parent.name if path.name == "model.xml" else (path.stem if path.suffix else model))
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


def run_script(model_path: str) -> str:
    """run.sh: `edgematte mask` with the bundle's first model; verify rebuilds it to prove what run.sh runs."""
    return ('#!/bin/sh\n# usage: ./run.sh INPUT... -o OUTDIR [-d DEVICE]\n'
            'exec edgematte mask -m "$(dirname "$0")/{}" "$@"\n'.format(model_path))


def ovms_config(names: Sequence[str]) -> str:
    """config.json of the OVMS layout, one model per name; verify rebuilds it too."""
    config = {"model_config_list": [{"config": {"name": n, "base_path": "/models/" + n}} for n in names]}
    return json.dumps(config, indent=1) + "\n"


def _bundle_top(out: str) -> str:
    """The top folder name of the bundle file `out`; BundleError naming `out` when it cannot be written as one."""
    text = str(out)
    suffix = next((s for s in (".tar.gz", ".tgz") if text.endswith(s)), None)
    if suffix is None:
        raise BundleError("{}: a bundle file name ends in .tar.gz".format(out))
    top = os.path.basename(text)[: -len(suffix)]
    if not BUNDLE_NAME.match(top):
        raise BundleError("{}: the bundle's top folder would be {!r}; name the file NAME.tar.gz, NAME of letters, "
                          "digits, '.', '_' or '-' starting with a letter or digit".format(out, top))
    if os.path.isdir(text):
        raise BundleError("{}: is a folder; -o takes the bundle's file name (e.g. {})".format(
            out, os.path.join(text, "box.tar.gz")))
    if os.path.lexists(text):
        raise BundleError("{}: already exists; not overwriting it (remove it or pick another -o)".format(out))
    return top


def _tar_member(tar: tarfile.TarFile, name: str, mode: int, mtime: int, data: Optional[BinaryIO] = None,
                size: int = 0, folder: bool = False) -> None:
    """Add one root-owned member (uid/gid 0, empty owner names) with exactly `mode`."""
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode, info.mtime = mode, mtime
    if folder:
        info.type = tarfile.DIRTYPE
    else:
        info.size = size
    tar.addfile(info, data)


def make_bundle(models: Sequence[str], out: str, ovms: bool = False, device: str = "CPU",
                sign_key: Optional[str] = None) -> Dict[str, Any]:
    """Pack the IRs (paths or zoo names) into the .tar.gz `out` with manifest and self-test, signed with the
    Ed25519 private key file `sign_key` when given; returns the manifest. Nothing is left at `out` on failure."""
    from .runtime import check_kit_ir, load_model

    if not models:
        raise BundleError("bundle: no models given")
    top = _bundle_top(out)
    private = load_private_key(sign_key) if sign_key else None
    xmls = [check_kit_ir(_ir_pair(model)) for model in models]  # refusals name the user's file, not the copy
    pins = requirements()
    stage = None  # type: Optional[str]
    try:
        parent = os.path.dirname(os.path.abspath(str(out)))
        os.makedirs(parent, exist_ok=True)
        stage = tempfile.mkdtemp(prefix="." + top + ".", suffix=".stage", dir=parent)  # on the bundle's own disk
        root = Path(stage)
        image = selftest_image()
        write_image(str(root / "selftest" / "input.png"), image)
        entries = []  # type: List[Dict[str, Any]]
        names = []  # type: List[str]
        for model, xml in zip(models, xmls):
            name = _model_name(model, names)
            names.append(name)
            folder = root / (name + "/1" if ovms else "models/" + name)
            folder.mkdir(parents=True)
            shutil.copyfile(str(xml), str(folder / "model.xml"))
            shutil.copyfile(str(xml.with_suffix(".bin")), str(folder / "model.bin"))
            predictor = load_model(str(folder / "model.xml"), device=device)  # the copy, checked against its card
            write_text(str(folder / "card.json"), predictor.card.to_json() + "\n")
            write_image(str(root / "selftest" / (name + ".png")), _mask8(predictor.predict(image)))
            card = predictor.card
            entries.append({"name": name, "path": (folder / "model.xml").relative_to(root).as_posix(),
                            "task": card.task, "precision": card.precision, "input_size": list(card.input_size),
                            "arch": card.arch})
        if ovms:
            write_text(str(root / "config.json"), ovms_config(names))
        write_text(str(root / "requirements.txt"), requirements_text(pins))
        write_text(str(root / "run.sh"), run_script(entries[0]["path"]))
        files = {p.relative_to(root).as_posix(): {"sha256": sha256_file(str(p)), "bytes": p.stat().st_size,
                                                  "mode": "{:04o}".format(SCRIPT_MODE if p.name == "run.sh"
                                                                          else FILE_MODE)}
                 for p in sorted(root.rglob("*")) if p.is_file()}
        created = time.time()
        manifest = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                    "layout": "ovms" if ovms else "models", "models": entries, "requirements": pins,
                    "owner": {"uid": 0, "gid": 0, "names": ""},
                    "selftest": {"input": "selftest/input.png", "tolerance": SELFTEST_TOLERANCE}, "files": files}
        manifest_bytes = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")
        mtime = int(created)
        with atomic_path(out) as tmp:
            with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
                _tar_member(tar, top, DIR_MODE, mtime, folder=True)
                _tar_member(tar, top + "/" + MANIFEST, FILE_MODE, mtime, io.BytesIO(manifest_bytes),
                            len(manifest_bytes))
                if private is not None:
                    signature = sign(private, manifest_bytes)
                    _tar_member(tar, top + "/" + SIGNATURE, FILE_MODE, mtime, io.BytesIO(signature), len(signature))
                for rel in sorted(set(files) | folders_of(files)):
                    if rel not in files:
                        _tar_member(tar, top + "/" + rel, DIR_MODE, mtime, folder=True)
                        continue
                    with open(str(root / rel), "rb") as handle:
                        _tar_member(tar, top + "/" + rel, int(files[rel]["mode"], 8), mtime, handle,
                                    files[rel]["bytes"])
        return manifest
    except OSError as exc:
        raise BundleError("{}: cannot write the bundle ({})".format(out, exc.strerror or exc)) from None
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def _mask8(alpha: np.ndarray) -> np.ndarray:
    """HxW 8-bit mask of an alpha (trimap: the foreground channel)."""
    if alpha.ndim == 3:
        alpha = alpha[..., -1]
    return np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)


def _signature_state(bundle: str, manifest: bytes, signature: Optional[bytes], public: Any,
                     key: Optional[str]) -> Dict[str, Any]:
    """What the signature proves: "verified" (by `public`), "unchecked" (present, no key given) or "none"."""
    if public is None:
        if signature is None:
            return {"state": "none"}
        try:
            return {"state": "unchecked", "key": parse_signature(signature)["key"]}
        except ValueError as exc:
            raise BundleError("{}: {} is malformed ({})".format(bundle, SIGNATURE, exc)) from None
    if signature is None:
        raise BundleError("{}: not signed, but --key {} asks for its signature (an unsigned bundle, or one whose "
                          "signature was removed)".format(bundle, key))
    if not signature_matches(public, manifest, signature):
        raise BundleError("{}: the manifest's signature does not match the key {} (rewritten, or signed by another "
                          "key)".format(bundle, key))
    return {"state": "verified", "key": key_id(public)}


def _sha256_text(text: str) -> str:
    """sha256 of UTF-8 text, as the manifest records files."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_manifest(bundle: str, data: bytes) -> Dict[str, Any]:
    """The manifest's fields, every path inside the bundle and every model self-tested; BundleError otherwise."""
    try:
        manifest = json.loads(data.decode("utf-8"))
        version = manifest.get("format")
    except (UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise BundleError("{}: malformed {} ({})".format(bundle, MANIFEST, exc)) from None
    if version != FORMAT:
        raise BundleError("{}: manifest format {!r}; this edgematte verifies format {} (bundle the models again with "
                          "this version)".format(bundle, version, FORMAT))
    files = check_files(bundle, manifest.get("files"))
    try:
        models, layout = manifest["models"], manifest["layout"]
        selftest_input, tolerance = manifest["selftest"]["input"], manifest["selftest"]["tolerance"]
        if not isinstance(models, list) or not isinstance(tolerance, int) or isinstance(tolerance, bool):
            raise TypeError("models is not a list or tolerance not a whole number")
    except (KeyError, TypeError) as exc:
        raise BundleError("{}: malformed {} ({})".format(bundle, MANIFEST, exc)) from None
    if not models:
        raise BundleError("{}: the manifest lists no models, so there is nothing to self-test".format(bundle))
    names, paths = [], []  # type: List[str], List[str]
    for entry in models:
        name = entry.get("name") if isinstance(entry, dict) else None
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not is_model_name(name) or name in names:
            raise BundleError("{}: the manifest's model name {!r} is not a plain, unique name".format(bundle, name))
        if not isinstance(path, str) or not path.endswith(".xml") or path not in files:
            raise BundleError("{}: model {} points at {!r}, not an IR inside the bundle".format(bundle, name, path))
        for needed in (path[:-4] + ".bin", "selftest/{}.png".format(name)):
            if needed not in files:
                raise BundleError("{}: model {} needs {}, which the manifest does not list".format(
                    bundle, name, needed))
        names.append(name)
        paths.append(path)
    untested = sorted(n for n in files if n.endswith(".xml") and n not in paths)
    if untested:
        raise BundleError("{}: {} is not among the manifest's models, so it would ship without a self-test".format(
            bundle, untested[0]))
    if selftest_input not in files:
        raise BundleError("{}: the self-test input {!r} is not a file of the bundle".format(bundle, selftest_input))
    script = files.get("run.sh")
    if script is None or script["sha256"] != _sha256_text(run_script(paths[0])) or script["mode"] != SCRIPT_MODE:
        raise BundleError("{}: run.sh is not the script bundle writes for its first model {} (replaced or "
                          "edited)".format(bundle, paths[0]))
    config = files.get("config.json")
    if layout == "ovms" and (config is None or config["sha256"] != _sha256_text(ovms_config(names))):
        raise BundleError("{}: config.json is not the OVMS configuration bundle writes for {} (replaced or "
                          "edited)".format(bundle, ", ".join(names)))
    manifest["files"] = files
    return manifest


def verify_bundle(bundle: str, device: str = "CPU", key: Optional[str] = None) -> Dict[str, Any]:
    """Check a bundle's members, hashes and (with the public key file `key`) signature without writing anything,
    then unpack its models and run the self-test on `device`; BundleError on the first problem."""
    from .runtime import load_model

    public = load_public_key(key) if key else None
    if not os.path.isfile(bundle):
        raise BundleError("{}: no such bundle file".format(bundle))
    seen = {}  # type: Dict[str, Any]

    def first_pass(manifest: bytes, signature: Optional[bytes]) -> Dict[str, Dict[str, Any]]:
        seen["bytes"], seen["signature"] = manifest, signature
        seen["state"] = _signature_state(bundle, manifest, signature, public, key)
        seen["manifest"] = parse_manifest(bundle, manifest)
        return seen["manifest"]["files"]

    scan(bundle, first_pass)  # every member checked and hashed; nothing written yet
    manifest = seen["manifest"]
    files = manifest["files"]
    needed = {manifest["selftest"]["input"]}  # type: Set[str]
    for entry in manifest["models"]:
        needed |= {entry["path"], entry["path"][:-4] + ".bin", "selftest/{}.png".format(entry["name"])}
    scratch = tempfile.mkdtemp(prefix="edgematte-verify-")
    try:
        need = sum(files[n]["bytes"] for n in needed)
        free = shutil.disk_usage(scratch).free
        if free < need + (1 << 20):
            raise BundleError("{}: the self-test needs {:.1f} MB in {}, which has {:.1f} MB free (set TMPDIR)".format(
                bundle, need / 1e6, os.path.dirname(scratch), free / 1e6))

        def second_pass(manifest_bytes: bytes, signature: Optional[bytes]) -> Dict[str, Dict[str, Any]]:
            if manifest_bytes != seen["bytes"] or signature != seen["signature"]:
                raise BundleError("{}: changed while it was being verified".format(bundle))
            return files

        def open_target(rel: str) -> Optional[BinaryIO]:
            if rel not in needed:
                return None
            target = os.path.join(scratch, *rel.split("/"))
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                return open(target, "xb")
            except OSError as exc:
                raise BundleError("{}: cannot unpack {} into {} ({})".format(bundle, rel, scratch,
                                                                           exc.strerror or exc)) from None

        scan(bundle, second_pass, open_target)  # unpack only what the self-test reads, hashed again
        root = Path(scratch)
        image = read_image(str(root / manifest["selftest"]["input"]))
        tolerance = manifest["selftest"]["tolerance"]
        results = []
        for entry in manifest["models"]:
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
            results.append({"name": entry["name"], "max_diff_levels": worst,
                            "precision": str(entry.get("precision", "?"))})
        return {"bundle": bundle, "files": len(files), "models": results, "device": device,
                "signature": seen["state"]}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def register(subparsers: Any) -> None:
    """Add the `bundle`, `verify` and `keygen` verbs."""
    import argparse

    p = add_verb(subparsers, "bundle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="IR .xml files or zoo names")
    p.add_argument("-o", "--out", required=True, metavar="FILE.tar.gz", help="bundle file to write")
    p.add_argument("--ovms", action="store_true", help="lay the models out as an OpenVINO Model Server repository "
                                                       "(NAME/1/model.xml + config.json)")
    p.add_argument("-d", "--device", default="CPU", help="device that makes the self-test masks (default CPU)")
    p.add_argument("--sign", metavar="KEY", help="sign the manifest with this Ed25519 private key file (PEM or "
                                                 "OpenSSH, unencrypted; `edgematte keygen` makes one)")
    p.set_defaults(func=_run_bundle)
    v = add_verb(subparsers, "verify",
                 description="Check every member of a bundle against its manifest (names, types, owners, modes, "
                             "sizes, sha256) before unpacking anything, check the manifest's signature with --key, "
                             "then run the self-test image through each model and compare with the bundled mask. "
                             "Without --key a bundle proves its integrity, not its origin.")
    v.add_argument("bundle", metavar="BUNDLE", help="a .tar.gz written by `edgematte bundle`")
    v.add_argument("-d", "--device", default="CPU", help="device to run the self-test on (default CPU)")
    v.add_argument("--key", metavar="PUB", help="Ed25519 public key file (PEM or OpenSSH) the manifest must be "
                                                "signed with; refuses unsigned bundles")
    v.set_defaults(func=_run_verify)
    k = add_verb(subparsers, "keygen",
                 description="Write {} (private, mode 0600: keep it where bundles are made) and {} (public: give it "
                             "to the boxes for `verify --key`) into DIR; existing files are never "
                             "overwritten.".format(PRIVATE_FILE, PUBLIC_FILE))
    k.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for the key pair")
    k.set_defaults(func=_run_keygen)


def _run_bundle(args: Any) -> int:
    manifest = make_bundle(args.models, args.out, ovms=args.ovms, device=args.device, sign_key=args.sign)
    print("wrote {} ({} models, {} files, {:.2f} MB)".format(args.out, len(manifest["models"]), len(manifest["files"]),
                                                             os.path.getsize(args.out) / 1e6))
    return 0


def _run_verify(args: Any) -> int:
    result = verify_bundle(args.bundle, device=args.device, key=args.key)
    for model in result["models"]:
        print("ok  {} ({}): self-test within {} levels on {}".format(model["name"], model["precision"],
                                                                      model["max_diff_levels"], result["device"]))
    print("verified {}: {} files match the manifest".format(args.bundle, result["files"]))
    signature = result["signature"]
    if signature["state"] == "verified":
        print("signature ok: the manifest is signed by {} ({})".format(args.key, signature["key"]))
    elif signature["state"] == "unchecked":
        print("edgematte: warning: {}: signature present (key {}), origin unchecked; pass --key PUB to check who "
              "signed it".format(args.bundle, signature["key"]), file=sys.stderr)
    else:
        print("edgematte: warning: {} is not signed: this proves integrity, not origin (bundle --sign KEY, "
              "verify --key PUB)".format(args.bundle), file=sys.stderr)
    return 0


def _run_keygen(args: Any) -> int:
    private, public = make_key_pair(args.out)
    print("wrote {} (private key, mode 0600: keep it secret, sign with `bundle --sign`) and {} (public key: "
          "`verify --key` on the boxes)".format(private, public))
    return 0


__all__ = ["make_bundle", "verify_bundle", "parse_manifest", "run_script", "selftest_image", "requirements",
           "BundleError", "register"]
