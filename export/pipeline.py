"""`edgematte pipeline`: prune -> fine-tune -> export -> FP16 -> INT8 of a trained checkpoint, resumable by stage.

It lives in export/ because it chains all three producers (train's loop, compress's pruning and INT8, export's
ONNX/IR), and imports flow train <- compress <- export. Each stage records its outputs in DIR/pipeline.json when it
finishes; a re-run skips finished stages and continues an unfinished fine-tune from its last checkpoint.
"""
import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from edgematte.edge.configs import dataclass_from_dict
from edgematte.edge.errors import InputError
from edgematte.edge.io import write_text
from edgematte.edge.verbs import add_verb

STATE_FILE = "pipeline.json"
EPILOG = """\
Stages (folders under DIR), each skipped when pipeline.json says it finished:
  base/       the unpruned checkpoint as FP32 and FP16 IR        base_int8/   its INT8 IR (NNCF)
  prune/      pruned.pt + prune.json (Torch-Pruning, L1)          pruned_raw/  the pruned model's FP32 IR before recovery
  finetune/   a normal training run from pruned.pt (--resume)      pruned/      the recovered model as FP32 and FP16 IR
  pruned_int8/ its INT8 IR                                         report.md, report.json, report.png
The IRs in each folder are model_fp32.xml, model_fp16.xml or model_int8.xml (+ .bin). The report measures every
IR in one interleaved latency run (OpenVINO CPU) and on --val with `edgematte eval`'s metrics, each row against the
unpruned FP32 IR.

An IR that fails its export parity check (e.g. FP16 beyond --fp16-max-diff) does not stop the pipeline: it is kept
as model_<precision>.parity-failed.xml, its row in the report is marked failed and not measured, a warning names it,
and only the stages that need it are skipped (INT8 needs its stage's FP32 IR). The FP16 limit defaults to the one
a shipped model was installed under (ship.json beside a zoo checkpoint such as edge/zoo/portrait/model.pt), else 0.02.
INT8 rows whose outputs move from their FP32 source beyond the FP16 limits carry a warning unless --max-drop guarded
them.

Budgets are yours to set and are reported only when set: --target-speedup X (the last row at least X times faster
than the unpruned FP32 IR) and --max-loss Y (its mean MAE at most Y above the unpruned FP32's, relative: 0.1 = 10 %).

Fine-tuning needs --train DATA (e.g. the data the checkpoint was trained on). With --finetune-max-steps N the
pipeline stops after N fine-tune steps; run the same command again to continue.

examples:
  edgematte pipeline runs/sod/best.pt -o out/sod_compressed --ratio 0.5 --train data/duts-tr \\
      --val data/duts-te-val --finetune-epochs 2 --distill --target-speedup 3 --max-loss 0.1
  edgematte pipeline edge/zoo/portrait/model.pt -o out/portrait --no-prune --val data/portraits
"""


@dataclass
class PipelineConfig:
    """Everything that defines a pipeline run; stored in DIR/pipeline.json and checked on re-runs."""

    checkpoint: str
    out: str
    strategy: Optional[str] = None  # None: the model's default (adaptive for modnet, fixed otherwise)
    ratio: float = 0.5
    backbone_threshold: float = 0.9
    round_to: int = 8
    prune: bool = True
    train: List[str] = field(default_factory=list)
    val: Optional[str] = None
    val_limit: int = 0  # 0: every validation pair
    finetune_epochs: int = 2
    finetune_lr: float = 5e-4
    batch: int = 8
    distill: bool = False
    distill_weight: float = 1.0
    calib: Optional[str] = None
    subset: int = 300
    max_drop: Optional[float] = None
    fp16_max_diff: Optional[float] = None  # None: the limit the checkpoint was shipped under, else export's 0.02
    bench_runs: int = 50
    threads: int = 0
    workers: int = 1
    target_speedup: Optional[float] = None  # report-only budgets, checked when set
    max_loss: Optional[float] = None

    def identity(self) -> Dict[str, Any]:
        """The fields that define the results (a re-run with other values needs another DIR)."""
        loose = {"out", "val_limit", "bench_runs", "threads", "workers", "target_speedup", "max_loss"}
        return {k: v for k, v in asdict(self).items() if k not in loose}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "PipelineConfig":
        """From JSON-style data; unknown fields are an error."""
        return dataclass_from_dict(cls, data, "pipeline config")


class Pipeline:
    """Runs the stages in order, recording each finished one in DIR/pipeline.json."""

    def __init__(self, config: PipelineConfig, verbose: bool = True, max_steps: Optional[int] = None) -> None:
        self.config = config
        self.max_steps = max_steps  # stop the fine-tune at this global step (a chunk); not part of the identity
        self.dir = Path(config.out)
        self.verbose = verbose
        self.state = {"config": asdict(config), "stages": {}}  # type: Dict[str, Any]
        path = self.dir / STATE_FILE
        if path.is_file():
            try:
                saved = json.loads(path.read_text())
            except ValueError as exc:
                raise InputError("{}: not valid JSON ({})".format(path, exc)) from None
            old = PipelineConfig.from_dict(saved.get("config", {}))
            if old.identity() != config.identity():
                changed = sorted(k for k, v in config.identity().items() if old.identity().get(k) != v)
                raise InputError("{}: this folder holds a pipeline with other settings ({}); use another -o".format(
                    path, ", ".join(changed)))
            self.state["stages"] = saved.get("stages", {})

    def say(self, text: str) -> None:
        """Print a progress line when verbose."""
        if self.verbose:
            print(text, flush=True)

    def warn(self, text: str) -> None:
        """One warning line on stderr."""
        print("warning: " + text, file=sys.stderr, flush=True)

    def fp16_limit(self) -> Optional[float]:
        """--fp16-max-diff, else the limit the checkpoint was shipped under, else None (export's default)."""
        if self.config.fp16_max_diff is not None:
            return self.config.fp16_max_diff
        return shipped_fp16_limit(self.config.checkpoint)

    def done(self, stage: str) -> Optional[Dict[str, Any]]:
        return self.state["stages"].get(stage)

    def record(self, stage: str, outputs: Dict[str, Any], started: float) -> Dict[str, Any]:
        entry = dict(outputs, seconds=round(time.time() - started, 1))
        self.state["stages"][stage] = entry
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text(str(self.dir / STATE_FILE), json.dumps(self.state, indent=2, sort_keys=True) + "\n")
        return entry

    def stage(self, name: str, work: Callable[[], Optional[Dict[str, Any]]]) -> Optional[Dict[str, Any]]:
        """Run `work` unless `name` finished before; None from `work` means "not finished yet" (resume later)."""
        previous = self.done(name)
        if previous is not None:
            self.say("[{}] done before: skipped".format(name))
            return previous
        self.say("[{}] ...".format(name))
        started = time.time()
        outputs = work()
        if outputs is None:
            return None
        return self.record(name, outputs, started)

    # -- stages ------------------------------------------------------------------------------------
    def export(self, checkpoint: str, folder: str, precisions: tuple = ("fp32", "fp16")) -> Dict[str, Any]:
        """Export to DIR/folder; an IR that misses parity is recorded under "failed" (not "irs") with a warning."""
        from .api import export_model, onnx_name
        from .parity import FP16_MAX_ABS_DIFF

        where = self.dir / folder
        limit = self.fp16_limit()
        if limit is not None and self.config.fp16_max_diff is None and "fp16" in precisions:
            self.say("[{}] FP16 parity limit {:g}: the one {} was shipped under".format(
                folder, limit, Path(self.config.checkpoint).parent / "ship.json"))
        report = export_model(checkpoint, str(where), formats=("onnx", "ir"), precisions=precisions, verbose=False,
                              fp16_max_diff=limit, strict=False)  # the ONNX file: the report's ONNX Runtime column
        irs = {p: str(where / report.ir_file(p)) for p in precisions if p not in report.failed}
        failed = {p: {"ir": str(where / info["file"]), "reason": info["reason"]} for p, info in report.failed.items()}
        for precision, info in sorted(failed.items()):
            self.warn("{}: {} parity failed ({}); marked failed in the report, the pipeline goes on without it".format(
                info["ir"], precision.upper(), info["reason"]))
        onnx = where / onnx_name(report.stem)
        return {"checkpoint": checkpoint, "irs": irs, "failed": failed, "onnx": str(onnx) if onnx.is_file() else None,
                "fp16_max_diff": FP16_MAX_ABS_DIFF if limit is None else limit, "params": report.params,
                "flops": report.flops, "input_size": report.input_size}

    def quantize(self, source: Dict[str, Any], folder: str) -> Dict[str, Any]:
        """INT8 of the source stage's FP32 IR; skipped (and recorded so) when that IR failed parity."""
        from edgematte.compress.accuracy import DEFAULT_VAL_LIMIT
        from edgematte.compress.cli import agreement, departure_warning, output_path
        from edgematte.compress.quantize import quantize_ir

        fp32_xml = source["irs"].get("fp32")
        if fp32_xml is None:
            reason = "its FP32 source {} failed parity".format(source.get("failed", {}).get("fp32", {}).get("ir"))
            self.warn("[{}] skipped: {}".format(folder, reason))
            return {"irs": {}, "skipped": reason}
        out = output_path(fp32_xml, str(self.dir / folder))
        c = self.config
        result = quantize_ir(fp32_xml, out, calib=c.calib, subset=c.subset, max_drop=c.max_drop,
                             val=c.val if c.max_drop is not None else None, val_limit=c.val_limit or DEFAULT_VAL_LIMIT)
        agree = agreement(fp32_xml, out, c.calib)
        warning = departure_warning(agree, guarded=c.max_drop is not None)
        if warning:
            self.warn("{}: {}".format(out, warning))
        return {"irs": {"int8": out}, "accuracy_control": result.get("accuracy_control"),
                "fake_quantize_ops": result["fake_quantize_ops"], "agreement_with_source": agree,
                "warning": warning}

    def prune(self) -> Dict[str, Any]:
        from edgematte.compress.prune import PruneConfig, prune_checkpoint

        c = self.config
        result = prune_checkpoint(c.checkpoint, str(self.dir / "prune"), PruneConfig(
            strategy=c.strategy, ratio=c.ratio, backbone_threshold=c.backbone_threshold, round_to=c.round_to))
        return {"checkpoint": result.checkpoint, "record": result.record_path,
                "params_before": result.record.params_before, "params_after": result.record.params_after}

    def finetune(self, pruned: str) -> Optional[Dict[str, Any]]:
        from edgematte.train.checkpoint import read_checkpoint
        from edgematte.train.trainer import TrainConfig, fit

        c = self.config
        ckpt = read_checkpoint(pruned)
        size = int(ckpt["config"]["input_size"][0])
        run = self.dir / "finetune"
        config = TrainConfig(model=str(ckpt["arch"]), data=list(c.train), val=[c.val] if c.val else [],
                             out=str(run), size=size, epochs=c.finetune_epochs, batch=c.batch, lr=c.finetune_lr,
                             warmup_steps=50, workers=c.workers, init=pruned, ckpt_every=250, log_every=25,
                             distill=c.checkpoint if c.distill else None, distill_weight=c.distill_weight,
                             max_steps=self.max_steps)
        result = fit(config, resume=True)
        if not result.finished:
            self.say("[finetune] stopped at step {} (epoch {}): run the same command again to continue".format(
                result.step, result.epoch))
            return None
        return {"checkpoint": str(run / "best.pt"), "steps": result.step, "best_val": result.best_metric,
                "metric": result.metric_name}

    def run(self) -> Optional[Dict[str, Any]]:
        """All stages, then the report; None when the fine-tune stopped early (re-run to continue)."""
        from .report import build_report

        c = self.config
        if not Path(c.checkpoint).is_file():
            raise InputError("{}: no such checkpoint".format(c.checkpoint))
        if c.prune and c.finetune_epochs > 0 and not c.train:
            raise InputError("fine-tuning needs --train DATA (or --finetune-epochs 0)")
        check_budgets(c)
        base = self.stage("base", lambda: self.export(c.checkpoint, "base"))
        self.stage("base_int8", lambda: self.quantize(base, "base_int8"))
        if c.prune:
            pruned = self.stage("prune", self.prune)
            self.stage("pruned_raw", lambda: self.export(pruned["checkpoint"], "pruned_raw", ("fp32",)))
            recovered = pruned["checkpoint"]
            if c.finetune_epochs > 0:
                tuned = self.stage("finetune", lambda: self.finetune(pruned["checkpoint"]))
                if tuned is None:
                    return None
                recovered = tuned["checkpoint"]
            final = self.stage("pruned", lambda: self.export(recovered, "pruned"))
            self.stage("pruned_int8", lambda: self.quantize(final, "pruned_int8"))
        self.say("[report] measuring every IR in one run ...")
        return build_report(self.dir, self.state, c, verbose=self.verbose)


def check_budgets(config: PipelineConfig) -> None:
    """InputError for a limit or budget that cannot be used (non-positive, or --max-loss without --val)."""
    if config.fp16_max_diff is not None and not config.fp16_max_diff > 0:
        raise InputError("--fp16-max-diff must be positive, got {}".format(config.fp16_max_diff))
    if config.target_speedup is not None and not config.target_speedup > 0:
        raise InputError("--target-speedup must be positive, got {}".format(config.target_speedup))
    if config.max_loss is not None:
        if not config.max_loss >= 0:
            raise InputError("--max-loss must be at least 0 (0.1 = 10 % more MAE), got {}".format(config.max_loss))
        if not config.val:
            raise InputError("--max-loss needs --val DIR: the MAE it bounds is measured there")


def shipped_fp16_limit(checkpoint: str) -> Optional[float]:
    """The FP16 max |diff| limit a zoo checkpoint (NAME/model.pt) was shipped under, from its ship.json; else None."""
    from edgematte.edge.zoo import CHECKPOINT_FILE

    path = Path(checkpoint)
    record = path.parent / "ship.json"
    if path.name != CHECKPOINT_FILE or not record.is_file():
        return None
    try:
        parity = json.loads(record.read_text()).get("export_parity", {})
        limits = [float(v["limits"]["max_abs_diff"]) for k, v in parity.items() if "fp16" in k]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return max(limits) if limits else None


def register(subparsers: Any) -> None:
    """Add the `pipeline` verb."""
    p = add_verb(subparsers, "pipeline",
                 description="Compress a trained checkpoint stage by stage (resumable) and report what each stage "
                             "cost and gained: params, FLOPs, IR size, latency, quality.", epilog=EPILOG,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="trained kit checkpoint (.pt)")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="pipeline folder (re-run to resume)")
    p.add_argument("--strategy", choices=("adaptive", "fixed", "global"), default=None,
                   help="pruning strategy (default: adaptive for modnet, fixed for the others)")
    p.add_argument("--ratio", type=float, default=0.5, help="fraction of filters removed (fixed/global, and the "
                   "non-backbone branches of adaptive; default 0.5)")
    p.add_argument("--backbone-threshold", type=float, default=0.9, help="adaptive: fraction of each backbone "
                   "layer's cumulative L1 norm kept (default 0.9)")
    p.add_argument("--round-to", type=int, default=8, help="channel counts rounded to a multiple of this (default 8)")
    p.add_argument("--no-prune", dest="prune", action="store_false", help="skip pruning: only FP16/INT8 of CKPT")
    p.add_argument("--train", metavar="DATA", nargs="+", default=[], help="training data for the fine-tune")
    p.add_argument("--val", metavar="DIR", default=None, help="labelled validation data: fine-tune validation, "
                   "the report's quality columns and --max-drop")
    p.add_argument("--val-limit", type=int, default=0, metavar="N", help="report quality on the first N pairs "
                   "(default all)")
    p.add_argument("--finetune-epochs", type=int, default=2, help="fine-tune epochs after pruning (default 2; 0: none)")
    p.add_argument("--finetune-lr", type=float, default=5e-4, help="fine-tune peak learning rate (default 5e-4)")
    p.add_argument("--finetune-max-steps", type=int, default=None, metavar="N", help="stop the fine-tune at step N "
                   "(run again to continue)")
    p.add_argument("--batch", type=int, default=8, help="fine-tune batch size (default 8)")
    p.add_argument("--distill", action="store_true", help="fine-tune with distillation from the unpruned CKPT")
    p.add_argument("--distill-weight", type=float, default=1.0, help="weight of the distillation loss (default 1)")
    p.add_argument("--workers", type=int, default=1, help="fine-tune data-loading workers (default 1)")
    p.add_argument("--calib", metavar="DIR", default=None, help="INT8 calibration images (default calib_data/)")
    p.add_argument("--subset", type=int, default=300, help="calibration images used (default 300)")
    p.add_argument("--max-drop", type=float, default=None, metavar="D", help="INT8 with accuracy control on --val "
                   "(score 1 - MAE may drop by at most D)")
    p.add_argument("--fp16-max-diff", type=float, default=None, metavar="D", help="FP16 parity: largest allowed "
                   "|diff| of the output maps (default: the limit a shipped checkpoint was installed under, else "
                   "0.02; IoU@0.5 >= 0.99 always holds)")
    p.add_argument("--target-speedup", type=float, default=None, metavar="X", help="budget: the last row at least "
                   "X times faster than the unpruned FP32 IR (reported met or not; default: no budget)")
    p.add_argument("--max-loss", type=float, default=None, metavar="Y", help="budget: the last row's mean MAE at "
                   "most Y above the unpruned FP32's, relative (0.1 = 10 %%; needs --val; default: no budget)")
    p.add_argument("--bench-runs", type=int, default=50, metavar="N", help="interleaved latency rounds (default 50)")
    p.add_argument("--threads", type=int, default=0, help="OpenVINO inference threads for the latency (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of `edgematte pipeline`."""
    config = PipelineConfig(checkpoint=args.checkpoint, out=args.out, strategy=args.strategy, ratio=args.ratio,
                            backbone_threshold=args.backbone_threshold, round_to=args.round_to, prune=args.prune,
                            train=list(args.train), val=args.val, val_limit=args.val_limit,
                            finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, batch=args.batch,
                            distill=args.distill, distill_weight=args.distill_weight, calib=args.calib,
                            subset=args.subset, max_drop=args.max_drop, fp16_max_diff=args.fp16_max_diff,
                            bench_runs=args.bench_runs, threads=args.threads, workers=args.workers,
                            target_speedup=args.target_speedup, max_loss=args.max_loss)
    pipeline = Pipeline(config, max_steps=args.finetune_max_steps)
    report = pipeline.run()
    if report is None:
        return 0
    print("report: {}".format(Path(args.out) / "report.md"))
    return 0
