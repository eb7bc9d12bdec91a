"""One spelling for dataset subsets: --include/--exclude GLOB (repeatable) and --limit N, old spellings as aliases."""
import argparse
from pathlib import Path

import pytest

from edgematte.edge.datasets import (DEPRECATED_SUBSET_FLAGS, Pair, Subset, add_subset_args, filter_pairs,
                                     subset_from_args)
from edgematte.edge.errors import InputError


def parser(**kwargs) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verb")
    add_subset_args(p, **kwargs)
    return p


def test_flags_build_the_subset_and_the_old_spellings_still_work(capsys):
    args = parser().parse_args(["--include", "a*", "--include", "b.png", "--exclude", "a2", "--limit", "3"])
    assert subset_from_args(args) == Subset(["a*", "b.png"], ["a2"], 3)
    assert subset_from_args(parser(default_limit=50).parse_args([])) == Subset([], [], 50)
    old = parser(default_limit=50, aliases=sorted(DEPRECATED_SUBSET_FLAGS))
    args = old.parse_args(["--data-filter", "v*", "w*", "--filter", "x*", "--include", "y*", "--data-limit", "2"])
    assert subset_from_args(args) == Subset(["v*", "w*", "x*", "y*"], [], 2)
    err = capsys.readouterr().err.splitlines()
    assert err == ["edgematte: warning: --data-filter is deprecated; use --include GLOB",
                   "edgematte: warning: --filter is deprecated; use --include GLOB",
                   "edgematte: warning: --data-limit is deprecated; use --limit N"]
    assert "--data-filter" not in old.format_help() and "--include GLOB" in old.format_help()
    with pytest.raises(SystemExit):
        parser().parse_args(["--limit", "0"])


def test_subset_sorts_then_limits_pairs_and_paths():
    pairs = [Pair(Path("x/images/{}.jpg".format(s))) for s in ("c2", "a1", "b1", "a3")]
    assert [p.stem for p in Subset(include=["a*", "b1.jpg"], limit=2).apply(pairs)] == ["a1", "a3"]
    assert [p.stem for p in Subset(exclude=["a*"]).apply(pairs)] == ["b1", "c2"]
    paths = [Path("d/{}.png".format(s)) for s in ("z", "y", "x")]
    assert Subset(limit=2).apply(paths) == [Path("d/x.png"), Path("d/y.png")]
    with pytest.raises(InputError, match=r"data: no pairs match --include 'q\*' --limit 2 \(of 4\)"):
        Subset(include=["q*"], limit=2).apply(pairs, source="data")
    assert Subset().apply([]) == [] and Subset(["a"], [], 1).describe() == "--include 'a' --limit 1"
    assert [p.stem for p in filter_pairs(pairs, ["a*"], ["a3"])] == ["a1"]  # train's filter, unchanged
