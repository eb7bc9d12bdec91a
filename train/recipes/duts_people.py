"""Pick the DUTS-TR pairs whose salient object is a person, as a folder of links (images/ + masks/).

The portrait set here is 360 ID photos: one framing, one kind of backdrop. DUTS-TR holds hundreds of people in
every framing (full body, groups, street scenes), but it has no class labels. OpenCV's own detectors (Haar frontal
and profile faces, the HOG pedestrian SVM; they ship inside opencv-python, nothing is downloaded) find them: a pair
is kept when a detection lies mostly inside the salient mask, so the mask is (mostly) the person, and the detection
shows skin (YCrCb box test): the face cascades also fire on dogs, owls and bottles, the skin test drops most of those.
Checked by eye on the first 1600 pairs: about 85 % of the kept pairs show people. Deterministic; about 6 minutes for
6000 images on 2 cores.

    python train/recipes/duts_people.py ../shared/data/duts-tr runs/data/duts_people
"""
import argparse
import json
import os
import sys
from multiprocessing import Pool
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from edgematte.edge.datasets import find_pairs

FACE_INSIDE = 0.6  # a face box must be at least this much salient mask
BODY_SCORE = 1.0  # HOG SVM score a pedestrian box needs
BODY_INSIDE = 0.35  # and this much salient mask inside it
FACE_MIN = 20  # smallest face side in pixels
FACE_SKIN = 0.4  # fraction of skin-coloured pixels in the central 60 % of a face box
BODY_SKIN = 0.08  # fraction of skin-coloured pixels in the top third of a pedestrian box (face, arms)
_detectors = {}  # type: Dict[str, object]


def _init() -> None:
    cv2.setNumThreads(1)
    root = cv2.data.haarcascades
    _detectors["face"] = cv2.CascadeClassifier(os.path.join(root, "haarcascade_frontalface_default.xml"))
    _detectors["profile"] = cv2.CascadeClassifier(os.path.join(root, "haarcascade_profileface.xml"))
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    _detectors["hog"] = hog


def _inside(mask: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    window = mask[max(0, y):y + h, max(0, x):x + w]
    return float(window.mean()) if window.size else 0.0


def skin_fraction(image: np.ndarray, x: int, y: int, w: int, h: int, margin: float = 0.2) -> float:
    """Fraction of skin-coloured pixels (YCrCb: Cr 135-175, Cb 80-130) in the box shrunk by `margin` each side."""
    dx, dy = int(w * margin), int(h * margin)
    window = image[max(0, y + dy):max(0, y + h - dy), max(0, x + dx):max(0, x + w - dx)]
    if not window.size:
        return 0.0
    ycc = cv2.cvtColor(window, cv2.COLOR_BGR2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    return float(((cr >= 135) & (cr <= 175) & (cb >= 80) & (cb <= 130)).mean())


def person_evidence(image_path: str, mask_path: str) -> Optional[str]:
    """'face', 'profile' or 'body' when a detector finds a person inside the salient mask, else None."""
    image = cv2.imread(image_path, cv2.IMREAD_COLOR)
    mask = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE)
    if image is None or mask is None:
        return None
    if mask.shape != image.shape[:2]:
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    salient = (mask > 127).astype(np.float32)
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    for kind in ("face", "profile"):
        boxes = _detectors[kind].detectMultiScale(gray, 1.2, 5, minSize=(FACE_MIN, FACE_MIN))
        for x, y, w, h in (map(int, box) for box in boxes):
            if _inside(salient, x, y, w, h) >= FACE_INSIDE and skin_fraction(image, x, y, w, h) >= FACE_SKIN:
                return kind
    boxes, scores = _detectors["hog"].detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.1)
    for box, score in zip(boxes, np.ravel(scores) if len(boxes) else []):
        x, y, w, h = map(int, box)
        if (score >= BODY_SCORE and _inside(salient, x, y, w, h) >= BODY_INSIDE
                and skin_fraction(image, x, y, w, h // 3, margin=0.0) >= BODY_SKIN):
            return "body"
    return None


def _scan(item: List[str]) -> Optional[str]:
    return person_evidence(item[0], item[1])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a DUTS-TR-like dataset folder (any layout the kit reads)")
    parser.add_argument("out", help="output folder: images/ and masks/ of links, people.json")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    pairs = find_pairs(args.data)
    with Pool(args.jobs, initializer=_init) as pool:
        found = pool.map(_scan, [[str(p.image), str(p.mask)] for p in pairs], chunksize=16)
    out = Path(args.out)
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    kept = {}
    for pair, kind in zip(pairs, found):
        if kind is None:
            continue
        kept[pair.stem] = kind
        for src, sub in ((pair.image, "images"), (pair.mask, "masks")):
            link = out / sub / src.name
            if not link.exists():
                os.symlink(os.path.abspath(str(src)), str(link))
    counts = {k: sum(1 for v in kept.values() if v == k) for k in ("face", "profile", "body")}
    record = {"source": os.path.abspath(args.data), "pairs": len(pairs), "kept": len(kept), "by": counts,
              "rule": {"face_inside": FACE_INSIDE, "body_score": BODY_SCORE, "body_inside": BODY_INSIDE,
                       "face_min": FACE_MIN,
                       "face_skin": FACE_SKIN, "body_skin": BODY_SKIN}, "stems": kept}
    (out / "people.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print("{}: kept {} of {} pairs ({})".format(out, len(kept), len(pairs), counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
