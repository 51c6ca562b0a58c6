"""Pre-training configuration: nested dataclasses, loaded from YAML, overridden with ``--set a.b=value``.

Unknown keys and out-of-range values are errors that name the key and the file, raised before any work starts.
"""
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from ..errors import ConfigError
from .pretrainer import PretrainMethodConfig

DATA_SOURCES = ('synthetic', 'folder', 'scannet', 'nyu-raw', 'sunrgbd', 'tum', '7scenes', 'shards', 'mixture')
PRECISIONS = ('fp32', 'bf16', 'fp16')
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


@dataclass
class ModelConfig:
    name: str = 'mask3d_vit_base_patch16'   # any mask3d.create_model name
    init: Optional[str] = None              # None: from scratch; a timm/Hub name ('vit_base_patch16_224.mae',
                                            # 'hf-hub:...', 'local-dir:...') or a weights file
    drop_path_rate: float = 0.0
    model_args: Dict[str, Any] = field(default_factory=dict)  # extra create_model kwargs, e.g. {depth: 2}


@dataclass
class DataConfig:
    source: str = 'synthetic'
    image_size: List[int] = field(default_factory=lambda: [240, 320])
    batch_size: int = 64                    # per process
    num_workers: int = 4
    scale: List[float] = field(default_factory=lambda: [0.5, 1.0])  # random resized crop area range
    hflip: float = 0.5
    skip_bad: bool = False                  # log and skip unreadable frames instead of stopping
    # synthetic
    synthetic_length: int = 10000
    synthetic_seed: int = 0
    # folder / scannet
    root: Optional[str] = None
    depth_scale: float = 1000.0             # folder: 16-bit PNG units per metre (1000 mm, 5000 TUM)
    split: Optional[str] = None             # scannet: scene list such as scannetv2_train.txt; 7scenes: train|test
    every: int = 1                          # scannet: keep every N-th frame of a scene
    # shards (`mask3d data shard`): root is a folder, a brace pattern or a URL; docs/datasets.md, "Shards"
    shard_index: Optional[str] = None       # shards.json (default: next to the shards)
    shuffle_buffer: int = 1000              # samples per reader held for shuffling
    # mixture: a list of sources, each a mapping of the keys above plus `weight`, e.g.
    #   [{source: scannet, root: ..., weight: 3}, {source: folder, root: ..., depth_scale: 5000, weight: 1}]
    mixture: List[Dict[str, Any]] = field(default_factory=list)
    mixture_length: int = 100000            # frames per epoch of a mixture


@dataclass
class OptimConfig:
    base_lr: float = 1.5e-4                 # lr = base_lr * effective_batch / 256 (MAE)
    lr: Optional[float] = None              # absolute lr; overrides base_lr
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 0
    warmup_fraction: float = 0.05           # used when warmup_steps == 0
    clip_grad: Optional[float] = None
    accum_steps: int = 1
    fused: bool = True                      # fused AdamW kernel (CPU and CUDA)


@dataclass
class TrainConfig:
    steps: int = 1000                       # optimizer steps
    precision: str = 'bf16'
    device: str = 'auto'                    # auto | cpu | cuda
    compile: bool = False                   # torch.compile the model (forward + backward), static shapes
    compile_mode: str = 'default'           # default | reduce-overhead (CUDA graphs) | max-autotune |
                                            # max-autotune-no-cudagraphs
    grad_checkpointing: bool = False
    fused_attn: str = 'auto'                # auto: SDPA kernels on CUDA, plain matmul attention on CPU (measured
                                            # 9 % faster per step here, docs/performance.md) | 'on' | 'off'
    seed: int = 0
    deterministic: bool = False
    log_every: int = 10
    ckpt_every: int = 500
    keep_every: int = 0                     # also keep step_N.pt every N steps (0: only last.pt)
    figure_every: int = 500
    figure_samples: int = 4
    export_at_end: bool = True


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    method: PretrainMethodConfig = field(default_factory=PretrainMethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self, patch_size: int = 16) -> None:
        try:
            self.method.validate()
        except ValueError as e:
            raise ConfigError(f'method.{e}') from e
        d, o, t = self.data, self.optim, self.train
        if d.source not in DATA_SOURCES:
            raise ConfigError(f'data.source must be one of {DATA_SOURCES}, got {d.source!r}')
        if len(d.image_size) != 2 or any(s % patch_size or s <= 0 for s in d.image_size):
            raise ConfigError(f'data.image_size {d.image_size} must be [H, W] with both divisible by the patch '
                              f'size {patch_size}')
        if d.source not in ('synthetic', 'mixture') and not d.root:
            raise ConfigError(f'data.root is required for data.source={d.source}')
        if d.source == 'mixture':
            mixture_parts(d)
        if not (0 < d.scale[0] <= d.scale[1] <= 1):
            raise ConfigError(f'data.scale must satisfy 0 < min <= max <= 1, got {d.scale}')
        if not 0 <= d.hflip <= 1:
            raise ConfigError(f'data.hflip must be in [0, 1], got {d.hflip}')
        for name, value in (('data.batch_size', d.batch_size), ('optim.accum_steps', o.accum_steps),
                            ('train.steps', t.steps), ('train.log_every', t.log_every),
                            ('train.ckpt_every', t.ckpt_every), ('train.figure_every', t.figure_every),
                            ('data.shuffle_buffer', d.shuffle_buffer)):
            if value < 1:
                raise ConfigError(f'{name} must be >= 1, got {value}')
        if d.num_workers < 0:
            raise ConfigError(f'data.num_workers must be >= 0, got {d.num_workers}')
        if t.precision not in PRECISIONS:
            raise ConfigError(f'train.precision must be one of {PRECISIONS}, got {t.precision!r}')
        if t.fused_attn not in ('auto', 'on', 'off'):
            raise ConfigError(f"train.fused_attn must be auto, on or off, got {t.fused_attn!r}")
        if t.compile_mode not in COMPILE_MODES:
            raise ConfigError(f'train.compile_mode must be one of {COMPILE_MODES}, got {t.compile_mode!r}')
        if t.device not in ('auto', 'cpu', 'cuda'):
            raise ConfigError(f"train.device must be auto, cpu or cuda, got {t.device!r}")
        if not 0 <= o.warmup_fraction < 1:
            raise ConfigError(f'optim.warmup_fraction must be in [0, 1), got {o.warmup_fraction}')
        if (o.lr if o.lr is not None else o.base_lr) <= 0:
            raise ConfigError('optim.lr / optim.base_lr must be > 0')


def mixture_parts(data: 'DataConfig') -> List[Tuple['DataConfig', float]]:
    """The entries of ``data.mixture`` as (DataConfig, weight) pairs, each validated: known keys only, a known
    non-mixture source, a root where the source needs one, a weight > 0."""
    if not data.mixture:
        raise ConfigError('data.mixture must list at least one source for data.source=mixture')
    parts = []
    for i, entry in enumerate(data.mixture):
        if not isinstance(entry, dict):
            raise ConfigError(f'data.mixture[{i}] must be a mapping, got {entry!r}')
        entry = dict(entry)
        weight = entry.pop('weight', 1.0)
        if not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigError(f'data.mixture[{i}].weight must be > 0, got {weight!r}')
        part = dataclasses.replace(data, mixture=[])
        _merge(part, entry, f'data.mixture[{i}]')
        if part.source not in DATA_SOURCES:
            raise ConfigError(f'data.mixture[{i}].source must be one of {DATA_SOURCES}, got {part.source!r}')
        if part.source in ('mixture', 'shards'):
            raise ConfigError(f'data.mixture[{i}]: a mixture cannot contain {part.source} (streamed shards are '
                              f'not indexed by frame)' if part.source == 'shards' else
                              f'data.mixture[{i}]: a mixture cannot contain a mixture')
        if part.source != 'synthetic' and not part.root:
            raise ConfigError(f'data.mixture[{i}]: root is required for source {part.source}')
        parts.append((part, float(weight)))
    return parts


def _merge(obj: Any, values: Dict[str, Any], where: str, prefix: str = '') -> None:
    if not isinstance(values, dict):
        raise ConfigError(f'{where}: section {prefix.rstrip(".") or "<root>"} must be a mapping, got {values!r}')
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'; valid keys here: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, where, f'{prefix}{key}.')
        else:
            setattr(obj, key, _coerce(current, value, f'{prefix}{key}', where))


def _coerce(current: Any, value: Any, key: str, where: str) -> Any:
    if value is None or current is None:
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: {key} must be true or false, got {value!r}')
        return value
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        if isinstance(value, str):  # YAML 1.1 reads '2e-3' (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where}: {key} must be a number, got {value!r}')
        if isinstance(current, int) and not isinstance(value, int):
            if float(value).is_integer():
                return int(value)
            raise ConfigError(f'{where}: {key} must be an integer, got {value!r}')
        return type(current)(value)
    if isinstance(current, dict) and not isinstance(value, dict):
        raise ConfigError(f'{where}: {key} must be a mapping, got {value!r}')
    if isinstance(current, list) and not isinstance(value, list):
        raise ConfigError(f'{where}: {key} must be a list, got {value!r}')
    if isinstance(current, str) and not isinstance(value, str):
        raise ConfigError(f'{where}: {key} must be a string, got {value!r}')
    return value


def parse_overrides(overrides: Sequence[str]) -> Dict[str, Any]:
    """['optim.lr=1e-4', 'data.image_size=[224,224]'] -> nested dict (values parsed as YAML)."""
    nested: Dict[str, Any] = {}
    for item in overrides:
        if '=' not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=1e-4")
        key, raw = item.split('=', 1)
        value = yaml.safe_load(raw)
        node = nested
        parts = key.strip().split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def load_dataclass_config(cls, path: Optional[Union[str, os.PathLike]] = None, overrides: Sequence[str] = ()):
    """``cls()`` updated from a YAML file, then from ``--set`` overrides; unknown keys and wrong types are errors."""
    cfg = cls()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f'{path}: config file not found')
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f'{path}: invalid YAML ({e})') from e
        _merge(cfg, values, str(path))
    if overrides:
        _merge(cfg, parse_overrides(overrides), '--set')
    return cfg


def dataclass_config_from_dict(cls, values: Dict[str, Any], where: str = 'checkpoint config'):
    cfg = cls()
    _merge(cfg, values, where)
    return cfg


def load_config(path: Optional[Union[str, os.PathLike]] = None, overrides: Sequence[str] = ()) -> PretrainConfig:
    return load_dataclass_config(PretrainConfig, path, overrides)


def config_from_dict(values: Dict[str, Any]) -> PretrainConfig:
    return dataclass_config_from_dict(PretrainConfig, values)
