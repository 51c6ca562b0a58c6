"""Fine-tuning configuration: one YAML per (task, dataset) under training/configs/finetune/, ``--set`` overrides.

Checked before any work starts: unknown keys, out-of-range values, and (once the data is opened) a class count
that does not match the dataset.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ...errors import ConfigError
from ..config import (DATA_KNOBS, OPTIM_KNOBS, TRAIN_KNOBS, BaseDataConfig, BaseOptimConfig, BaseTrainConfig,
                      ValidatedConfig, dataclass_config_from_dict, ensure_valid, load_dataclass_config)
from ..config_rules import (Relation, at_least, block_indices, in_unit, kwargs_mapping, min_lr_below_lr, name,
                            non_negative, non_negative_int, one_of, positive)
from ..data.registry import allowed, canonical, names, serves, source_rule
from .tasks import TASKS, get_task

FINETUNE_SOURCES = names('finetune')  # from the dataset registry (training/data/registry.py)
SCHEDULES = ('poly', 'cosine')


@dataclass
class BackboneConfig:
    # a mask3d.create_model name (mask3d_vit_base_patch16, vit_base_patch16_224.mae, hf-hub:ORG/NAME,
    # local-dir:DIR), a local exported folder, a `mask3d pretrain` run directory, or a weights file
    backbone: str = 'mask3d_vit_base_patch16'
    pretrained: bool = True               # registry names only: load the published weights (False: random init);
                                          # hf-hub:, local-dir:, folders, run dirs and files always load weights
    arch: Optional[str] = None            # architecture for a bare weights file (default: the run's or backbone)
    model_args: Dict[str, Any] = field(default_factory=dict)  # extra create_model kwargs, e.g. {depth: 2}
    drop_path_rate: float = 0.1
    freeze_backbone: bool = False         # linear probing: only the head trains
    out_indices: Optional[List[int]] = None  # blocks feeding the head (default: 4 evenly spaced, last included)
    head: str = 'upernet'                 # semseg: upernet | linear
    head_channels: int = 256
    num_classes: int = 20                 # semseg / instance (things only); must match the dataset
    max_depth: float = 10.0               # depth head output range (metres)
    detector_args: Dict[str, Any] = field(default_factory=dict)  # instance: torchvision MaskRCNN kwargs


@dataclass
class FinetuneDataConfig(BaseDataConfig):
    batch_size: int = 8                   # per process
    color_jitter: float = 0.2
    # synthetic: train frames come from synthetic_seed, validation frames from synthetic_val_seed (disjoint)
    synthetic_length: int = 2000
    synthetic_seed: int = 0
    synthetic_val_length: int = 64
    synthetic_val_seed: int = 1000
    # real datasets
    root: Optional[str] = None            # scannet/scannet-25k/cityscapes/folder/nyu-raw: dataset root; nyuv2: the .mat
    val_root: Optional[str] = None        # validation root when it differs (e.g. nyu-raw train, nyuv2 .mat test)
    val_source: Optional[str] = None      # validation source when it differs from `source`
    train_split: Optional[str] = None     # scannet: scene list file; nyuv2: train; cityscapes: train
    val_split: Optional[str] = None       # scannet: scene list file; nyuv2: test; cityscapes: val
    label_map: Optional[str] = None       # scannet: scannetv2-labels.combined.tsv
    class_mapping: Optional[str] = None   # nyuv2: classMapping40.mat
    splits_mat: Optional[str] = None      # nyuv2: splits.mat
    nyu_classes: int = 40                 # nyuv2: 40 or 13
    nyu_depth: str = 'raw'                # nyuv2 ground truth depth: raw (BTS protocol) or filled
    every: int = 1                        # scannet: every N-th frame
    min_instance_pixels: int = 0          # instance: drop smaller instances (Pri3D: 1000)
    depth_scale: float = 1000.0           # folder / nyu-raw: PNG units per metre


@dataclass
class EvalConfig:
    batch_size: int = 4
    max_frames: int = 0                   # 0: the whole split
    min_depth: float = 1e-3
    max_depth: float = 10.0
    eigen_crop: bool = False              # NYUv2 depth protocol (480x640 ground truth)
    full_resolution: bool = True          # semseg/depth: score at the ground truth's own size
    figure_samples: int = 4


@dataclass
class FinetuneOptimConfig(BaseOptimConfig):
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    lr: float = 1e-4
    layer_decay: float = 0.65             # per-block lr decay through timm's optimizer factory (BEiT/MAE)
    schedule: str = 'poly'                # poly | cosine, per iteration, after warmup
    poly_power: float = 1.0


@dataclass
class FinetuneTrainConfig(BaseTrainConfig):
    eval_every: int = 0                   # 0: only at the end


FINETUNE_KNOBS = {
    'task': one_of(tuple(TASKS)), 'model.backbone': name(), 'model.arch': name(optional=True),
    'model.model_args': kwargs_mapping(), 'model.detector_args': kwargs_mapping(),
    'model.out_indices': block_indices(optional=True),
    'model.drop_path_rate': in_unit(high_open=True), 'model.head': one_of(('upernet', 'linear')),
    'model.head_channels': at_least(1), 'model.max_depth': positive(),
    'data.source': source_rule('finetune'), **DATA_KNOBS, 'data.color_jitter': in_unit(),
    'data.synthetic_length': at_least(1), 'data.synthetic_val_length': at_least(1),
    'data.nyu_classes': one_of((40, 13)), 'data.nyu_depth': one_of(('raw', 'filled')), 'data.every': at_least(1),
    'data.min_instance_pixels': non_negative(), 'data.depth_scale': positive(),
    'data.synthetic_seed': non_negative_int(), 'data.synthetic_val_seed': non_negative_int(),
    **{f'data.{k}': name(optional=True) for k in ('root', 'val_root', 'train_split', 'val_split', 'label_map',
                                                  'class_mapping', 'splits_mat')},
    'eval.batch_size': at_least(1), 'eval.max_frames': non_negative(), 'eval.min_depth': positive(),
    'eval.max_depth': positive(), 'eval.figure_samples': non_negative(),
    'optim.lr': positive(), 'optim.layer_decay': in_unit(low_open=True), 'optim.schedule': one_of(SCHEDULES),
    'optim.poly_power': positive(), **OPTIM_KNOBS, **TRAIN_KNOBS, 'train.eval_every': non_negative()}
FINETUNE_RELATIONS = (
    min_lr_below_lr(),
    Relation(('data.val_source',), lambda c: serves(c.data.val_source or c.data.source, 'finetune'),
             lambda c: f"data.val_source must be one of {allowed('finetune')}, got {c.data.val_source!r}",
             ('data.val_source=bogus',)),
    Relation(('data.source', 'data.root'), lambda c: canonical(c.data.source) == 'synthetic' or bool(c.data.root),
             lambda c: f'data.root is required for data.source={c.data.source}', ('data.source=folder',)),
    Relation(('task', 'model.num_classes'), lambda c: not get_task(c.task).has_classes or c.model.num_classes >= 1,
             lambda c: f'model.num_classes must be >= 1, got {c.model.num_classes}', ('model.num_classes=0',)),
    Relation(('model.head', 'data.batch_size'),
             lambda c: c.data.batch_size >= get_task(c.task).min_batch_size(c),
             lambda c: 'data.batch_size=1 with model.head=upernet: its pyramid pooling normalises 1x1 maps with '
                       'BatchNorm, which needs >= 2 images per batch; use batch_size >= 2 or model.head=linear',
             ('data.batch_size=1', 'model.head=upernet')),
    Relation(('eval.min_depth', 'eval.max_depth'), lambda c: c.eval.min_depth < c.eval.max_depth,
             lambda c: f'eval.min_depth ({c.eval.min_depth}) must be < eval.max_depth ({c.eval.max_depth})',
             ('eval.min_depth=20',)))


@dataclass
class FinetuneConfig(ValidatedConfig, knobs=FINETUNE_KNOBS, relations=FINETUNE_RELATIONS):
    task: str = 'semseg'
    model: BackboneConfig = field(default_factory=BackboneConfig)
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)


def load_finetune_config(path=None, overrides=(), task: Optional[str] = None) -> FinetuneConfig:
    """The YAML, then ``--set``; ``task`` (the CLI's ``--task``) must agree with the file's ``task`` if given."""
    cfg = load_dataclass_config(FinetuneConfig, path, overrides)
    if task is not None:
        if path is not None and cfg.task != task:
            raise ConfigError(f'--task {task} but {path} is a {cfg.task!r} config')
        cfg.task = task
    ensure_valid(cfg)
    return cfg


def finetune_config_from_dict(values: Dict[str, Any]) -> FinetuneConfig:
    return dataclass_config_from_dict(FinetuneConfig, values)
