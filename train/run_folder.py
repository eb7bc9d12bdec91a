"""Which run folder `train` may write into: a new or empty one, or with --resume the same run (same architecture)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List

from edgematte.edge.errors import InputError
from edgematte.edge.outputs import OutputError, check_output_folder

CONFIG = "config.json"


def visible_entries(folder: Path) -> List[str]:
    """Names in `folder` that are not hidden (the kit's temporary names all start with '.')."""
    if not folder.is_dir():
        return []
    return sorted(name for name in os.listdir(str(folder)) if not name.startswith("."))


def check_run_folder(config: Any, resume: bool) -> None:
    """Refuse to start over an existing run without --resume, and to resume a run of another architecture or size.

    Without this a fresh `train -o RUN` replaced RUN's best.pt, last.pt, config.json and log.csv, and --resume
    silently trained the stored architecture whatever the command asked for.
    """
    from .trainer import TrainConfig

    if int(os.environ.get("RANK", "0") or 0) != 0:  # under torchrun rank 0 decides; the others see its writes
        return
    run = check_output_folder(config.out, "-o")
    entries = visible_entries(run)
    if not entries:
        return
    shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
    stored = run / CONFIG
    if not resume:
        raise OutputError("-o {}: already holds {}; continue that run with --resume, or give a new or empty "
                          "folder".format(run, shown))
    if not stored.is_file():
        raise OutputError("-o {}: --resume needs a run folder written by `edgematte train` (no {}), but it holds "
                          "{}; give a new or empty folder".format(run, CONFIG, shown))
    saved = TrainConfig.from_json(stored.read_text(), str(stored))
    clashes = []
    if str(config.model) != str(saved.model):
        clashes.append("architecture {} (the run trains {})".format(config.model, saved.model))
    if config.size and saved.size and int(config.size) != int(saved.size):
        clashes.append("--size {} (the run trains at {})".format(config.size, saved.size))
    if clashes:
        raise InputError("-o {} --resume: {}; resume with the run's own settings, or train into a new "
                         "folder".format(run, "; ".join(clashes)))


__all__ = ["check_run_folder", "visible_entries"]
