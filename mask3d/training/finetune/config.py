"""Fine-tuning configuration: one YAML per (task, dataset) under training/configs/finetune/, ``--set`` overrides.

Checked before any work starts: unknown keys, out-of-range values, and (once the data is opened) a class count
that does not match the dataset.
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ...errors import ConfigError
from ..config import PRECISIONS, dataclass_config_from_dict, load_dataclass_config

TASKS = ('semseg', 'depth', 'instance')
FINETUNE_SOURCES = ('synthetic', 'scannet', 'scannet-25k', 'nyuv2', 'nyu-raw', 'cityscapes', 'folder')
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
class FinetuneDataConfig:
    source: str = 'synthetic'
    image_size: List[int] = field(default_factory=lambda: [240, 320])
    batch_size: int = 8                   # per process
    num_workers: int = 4
    scale: List[float] = field(default_factory=lambda: [0.5, 1.0])  # random resized crop area range (train)
    hflip: float = 0.5
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
class FinetuneOptimConfig:
    lr: float = 1e-4
    layer_decay: float = 0.65             # per-block lr decay through timm's optimizer factory (BEiT/MAE)
    weight_decay: float = 0.05
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = 'poly'                # poly | cosine, per iteration, after warmup
    poly_power: float = 1.0
    warmup_steps: int = 0
    warmup_fraction: float = 0.05         # used when warmup_steps == 0
    min_lr: float = 0.0
    clip_grad: Optional[float] = None
    accum_steps: int = 1
    fused: bool = True


@dataclass
class FinetuneTrainConfig:
    steps: int = 1000
    precision: str = 'bf16'
    device: str = 'auto'
    seed: int = 0
    deterministic: bool = False
    log_every: int = 10
    eval_every: int = 0                   # 0: only at the end
    ckpt_every: int = 500
    keep_every: int = 0


@dataclass
class FinetuneConfig:
    task: str = 'semseg'
    model: BackboneConfig = field(default_factory=BackboneConfig)
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        m, d, e, o, t = self.model, self.data, self.eval, self.optim, self.train
        if self.task not in TASKS:
            raise ConfigError(f'task must be one of {TASKS}, got {self.task!r}')
        for name, src in (('data.source', d.source), ('data.val_source', d.val_source or d.source)):
            if src not in FINETUNE_SOURCES:
                raise ConfigError(f'{name} must be one of {FINETUNE_SOURCES}, got {src!r}')
        if d.source != 'synthetic' and not d.root:
            raise ConfigError(f'data.root is required for data.source={d.source}')
        if len(d.image_size) != 2 or any(s % 16 or s <= 0 for s in d.image_size):
            raise ConfigError(f'data.image_size {d.image_size} must be [H, W], both multiples of 16')
        if not (0 < d.scale[0] <= d.scale[1] <= 1):
            raise ConfigError(f'data.scale must satisfy 0 < min <= max <= 1, got {d.scale}')
        if self.task == 'semseg' and m.head not in ('upernet', 'linear'):
            raise ConfigError(f"model.head must be 'upernet' or 'linear' for semseg, got {m.head!r}")
        if self.task == 'semseg' and m.head == 'upernet' and d.batch_size < 2:
            raise ConfigError('data.batch_size=1 with model.head=upernet: its pyramid pooling normalises 1x1 maps with '
                              'BatchNorm, which needs >= 2 images per batch; use batch_size >= 2 or model.head=linear')
        if self.task != 'depth' and m.num_classes < 1:
            raise ConfigError(f'model.num_classes must be >= 1, got {m.num_classes}')
        if o.schedule not in SCHEDULES:
            raise ConfigError(f'optim.schedule must be one of {SCHEDULES}, got {o.schedule!r}')
        if not 0 < o.layer_decay <= 1:
            raise ConfigError(f'optim.layer_decay must be in (0, 1] (1: no decay), got {o.layer_decay}')
        if o.lr <= 0:
            raise ConfigError(f'optim.lr must be > 0, got {o.lr}')
        if not 0 <= o.warmup_fraction < 1:
            raise ConfigError(f'optim.warmup_fraction must be in [0, 1), got {o.warmup_fraction}')
        for name, value in (('data.batch_size', d.batch_size), ('eval.batch_size', e.batch_size),
                            ('optim.accum_steps', o.accum_steps), ('train.steps', t.steps),
                            ('train.log_every', t.log_every), ('train.ckpt_every', t.ckpt_every)):
            if value < 1:
                raise ConfigError(f'{name} must be >= 1, got {value}')
        if t.precision not in PRECISIONS:
            raise ConfigError(f'train.precision must be one of {PRECISIONS}, got {t.precision!r}')
        if t.device not in ('auto', 'cpu', 'cuda'):
            raise ConfigError(f"train.device must be auto, cpu or cuda, got {t.device!r}")
        if not 0 < e.min_depth < e.max_depth:
            raise ConfigError(f'eval.min_depth/max_depth must satisfy 0 < min < max, got {e.min_depth}, {e.max_depth}')


# keys that may change between a run and its resumption (they do not change the maths)
FINETUNE_RESUMABLE = ('train.steps', 'train.log_every', 'train.ckpt_every', 'train.keep_every', 'train.eval_every',
                      'train.device', 'data.num_workers', 'eval.batch_size', 'eval.max_frames',
                      'eval.figure_samples')


def load_finetune_config(path=None, overrides=(), task: Optional[str] = None) -> FinetuneConfig:
    """The YAML, then ``--set``; ``task`` (the CLI's ``--task``) must agree with the file's ``task`` if given."""
    cfg = load_dataclass_config(FinetuneConfig, path, overrides)
    if task is not None:
        if path is not None and cfg.task != task:
            raise ConfigError(f'--task {task} but {path} is a {cfg.task!r} config')
        cfg.task = task
    cfg.validate()
    return cfg


def finetune_config_from_dict(values: Dict[str, Any]) -> FinetuneConfig:
    return dataclass_config_from_dict(FinetuneConfig, values)
