"""The pre-training config: ``model``, ``method`` (the method's own knobs, ``pretrainer.METHOD_KNOBS``), ``data``,
``optim`` and ``train`` sections, their validation table, and the loaders (``load_config``, ``config_from_dict``).
Built on the shared machinery of ``mask3d/training/config.py`` (YAML + ``--set`` loading, base sections)."""
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ...errors import ConfigError
from ..config import (DATA_KNOBS, OPTIM_KNOBS, TRAIN_KNOBS, BaseDataConfig, BaseOptimConfig, BaseTrainConfig,
                      ValidatedConfig, _merge, dataclass_config_from_dict, ensure_valid, load_dataclass_config)
from ..config_rules import (Relation, at_least, finite_number, in_unit, kwargs_mapping, min_lr_below_lr, name,
                            non_negative_int, one_of, positive, positive_or_null)
from ..data.device_decode import DECODE_DEVICES
from ..data.registry import canonical, get as get_dataset, names as dataset_names, source_rule
from .pretrainer import METHOD_KNOBS, METHOD_RELATIONS, PretrainMethodConfig

DATA_SOURCES = dataset_names('pretrain')  # from the dataset registry (training/data/registry.py)
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


@dataclass
class ModelConfig:
    name: str = 'mask3d_vit_base_patch16'   # any mask3d.create_model name
    init: Optional[str] = None              # None: from scratch; a timm/Hub name ('vit_base_patch16_224.mae',
                                            # 'hf-hub:...', 'local-dir:...') or a weights file
    drop_path_rate: float = 0.0
    model_args: Dict[str, Any] = field(default_factory=dict)  # extra create_model kwargs, e.g. {depth: 2}


@dataclass
class DataConfig(BaseDataConfig):
    decode_device: str = 'worker'           # worker | cuda | cpu: where colour JPEGs are decoded (datasets.md)
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
class OptimConfig(BaseOptimConfig):
    base_lr: float = 1.5e-4                 # lr = base_lr * effective_batch / 256 (MAE)
    lr: Optional[float] = None              # absolute lr; overrides base_lr


@dataclass
class TrainConfig(BaseTrainConfig):
    compile: bool = False                   # torch.compile the model (forward + backward), static shapes
    compile_mode: str = 'default'           # default | reduce-overhead (CUDA graphs) | max-autotune |
                                            # max-autotune-no-cudagraphs
    grad_checkpointing: bool = False
    fused_attn: str = 'auto'                # auto: SDPA kernels on CUDA, plain matmul attention on CPU (measured
                                            # faster per step here, docs/performance.md) | 'on' | 'off'
    figure_every: int = 500
    figure_samples: int = 4
    export_at_end: bool = True


PRETRAIN_KNOBS = {
    'model.name': name(), 'model.init': name(optional=True), 'model.model_args': kwargs_mapping(),
    'model.drop_path_rate': in_unit(high_open=True), **METHOD_KNOBS,
    'data.source': source_rule('pretrain'), **DATA_KNOBS, 'data.synthetic_length': at_least(1),
    'data.synthetic_seed': non_negative_int(), 'data.root': name(optional=True), 'data.split': name(optional=True),
    'data.shard_index': name(optional=True),
    'data.depth_scale': positive(), 'data.every': at_least(1), 'data.shuffle_buffer': at_least(1),
    'data.mixture_length': at_least(1), 'data.decode_device': one_of(DECODE_DEVICES),
    'optim.base_lr': positive(), 'optim.lr': positive_or_null(), **OPTIM_KNOBS,
    **TRAIN_KNOBS, 'train.compile_mode': one_of(COMPILE_MODES), 'train.fused_attn': one_of(('auto', 'on', 'off')),
    'train.figure_every': at_least(1), 'train.figure_samples': at_least(1)}
PRETRAIN_RELATIONS = METHOD_RELATIONS + (
    min_lr_below_lr(),
    Relation(('data.source', 'data.root'),
             lambda c: canonical(c.data.source) in ('synthetic', 'mixture') or bool(c.data.root),
             lambda c: f'data.root is required for data.source={c.data.source}', ('data.source=folder',)),
    Relation(('data.mixture',), lambda c: canonical(c.data.source) != 'mixture' or bool(mixture_parts(c.data)),
             lambda c: 'data.mixture must list at least one source', ('data.source=mixture',)))


@dataclass
class PretrainConfig(ValidatedConfig, knobs=PRETRAIN_KNOBS, relations=PRETRAIN_RELATIONS):
    model: ModelConfig = field(default_factory=ModelConfig)
    method: PretrainMethodConfig = field(default_factory=PretrainMethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


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
        if not finite_number(weight) or weight <= 0:
            raise ConfigError(f'data.mixture[{i}].weight must be a finite number > 0, got {weight!r}')
        part = dataclasses.replace(data, mixture=[])
        _merge(part, entry, f'data.mixture[{i}]')
        try:
            dataset = get_dataset(part.source, 'pretrain')
        except ConfigError as e:
            raise ConfigError(f'data.mixture[{i}].source: {e}') from None
        if dataset.streamed or dataset.name == 'mixture':
            raise ConfigError(f'data.mixture[{i}]: a mixture cannot contain {part.source} (streamed shards are '
                              f'not indexed by frame)' if dataset.streamed else
                              f'data.mixture[{i}]: a mixture cannot contain a mixture')
        if dataset.name != 'synthetic' and not part.root:
            raise ConfigError(f'data.mixture[{i}]: root is required for source {part.source}')
        parts.append((part, float(weight)))
    return parts


def load_config(path: Optional[Union[str, os.PathLike]] = None, overrides: Sequence[str] = ()) -> PretrainConfig:
    """The pre-training config from YAML and ``--set`` overrides, validated."""
    cfg = load_dataclass_config(PretrainConfig, path, overrides)
    ensure_valid(cfg)
    return cfg


def config_from_dict(values: Dict[str, Any]) -> PretrainConfig:
    return dataclass_config_from_dict(PretrainConfig, values)
