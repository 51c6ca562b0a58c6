"""Probe configuration: training/configs/probe/*.yaml, ``--set`` overrides, checked before any work starts."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..config import DEVICES, ValidatedConfig, ensure_valid, load_dataclass_config
from ..config_rules import (Relation, Rule, at_least, in_unit, kwargs_mapping, name, non_negative, non_negative_int,
                            one_of, positive, positive_list, size_pair)
from ..data.registry import canonical, names, source_rule

PROBE_TASKS = ('depth', 'normals', 'semseg', 'correspondence')
PROBE_SOURCES = names('probe')  # from the dataset registry (training/data/registry.py)


@dataclass
class ProbeModelConfig:
    backbone: str = 'mask3d_vit_tiny_patch16'  # run dir, export folder, local-dir:, hf-hub:, weights file, timm name
    pretrained: bool = True               # registry names only (False: random initialisation)
    arch: Optional[str] = None            # architecture of a bare weights file
    model_args: Dict[str, Any] = field(default_factory=dict)  # extra create_model kwargs, e.g. {depth: 2}


@dataclass
class ProbeFeatureConfig:
    blocks: List[int] = field(default_factory=lambda: [-4, -3, -2, -1])  # block indices; negative count from the end
    batch_size: int = 16


@dataclass
class ProbeDataConfig:
    source: str = 'synthetic'
    image_size: List[int] = field(default_factory=lambda: [128, 160])  # [H, W], multiples of the patch size
    # synthetic: rooms rendered on the fly; train and test rooms from disjoint seeds
    train_seed: int = 0
    test_seed: int = 1000
    train_frames: int = 64
    test_frames: int = 16
    views: int = 2                        # synthetic: camera poses per test room (correspondence pairs)
    # folder: written by `mask3d data synth` (semantic/, intrinsics/, optionally pose/)
    train_root: Optional[str] = None
    test_root: Optional[str] = None
    depth_scale: float = 1000.0           # folder: 16-bit PNG units per metre (7scenes: always mm)
    # nyu: labelled .mat with the official splits
    root: Optional[str] = None            # nyu: the .mat; scannet: exported scenes; 7scenes: a sequence/scene
    class_mapping: Optional[str] = None   # nyu: classMapping40.mat
    splits_mat: Optional[str] = None      # nyu: splits.mat
    nyu_classes: int = 40
    train_split: Optional[str] = None     # scannet: scene list
    test_split: Optional[str] = None
    every: int = 1                        # scannet: every N-th frame
    pair_gap: int = 1                     # posed sequences: frame k pairs with frame k + pair_gap (same scene)
    max_depth: float = 10.0


@dataclass
class ProbeOptimConfig:
    """AdamW of the heads (cosine schedule over ``train.steps``, 5 % warm-up); ``optim.*`` as in every config."""
    lr: float = 1e-3
    weight_decay: float = 1e-4


def _moved_to_optim(name: str) -> property:
    """``cfg.train.lr`` in code: an error naming the new place (a file or --set still may say ``train.lr``)."""
    def moved(*_):
        raise AttributeError(f'the probe\'s train.{name} is now optim.{name} (cfg.optim.{name})')
    return property(moved, moved)


@dataclass
class ProbeTrainConfig:
    steps: int = 300
    batch_size: int = 8
    hidden: int = 128                     # depth / normals probe width
    seed: int = 0
    device: str = 'auto'
    lr = _moved_to_optim('lr')            # not fields: the old names, read by the loader as optim.*
    weight_decay = _moved_to_optim('weight_decay')


@dataclass
class ProbeCorrespondenceConfig:
    thresholds_px: List[float] = field(default_factory=lambda: [5.0, 10.0, 20.0])  # at data.image_size
    max_pairs: int = 16
    max_queries: int = 1000               # ground-truth correspondences scored per pair (evenly subsampled)
    occlusion_tolerance: float = 0.05     # relative depth difference still counted as visible


PROBE_KNOBS = {
    'tasks': Rule(f'a non-empty list of {PROBE_TASKS}', lambda v: isinstance(v, list) and bool(v) and all(
        t in PROBE_TASKS for t in v), ['depth', 'pose']),
    'features.blocks': Rule('a non-empty list of block indices (e.g. [-4, -3, -2, -1], the last four)',
                            lambda v: isinstance(v, list) and bool(v) and all(
                                isinstance(b, int) and not isinstance(b, bool) for b in v), []),
    'features.batch_size': at_least(1),
    'model.backbone': name(), 'model.arch': name(optional=True), 'model.model_args': kwargs_mapping(),
    'data.train_seed': non_negative_int(), 'data.test_seed': non_negative_int(), 'data.nyu_classes': one_of((40, 13)),
    **{f'data.{k}': name(optional=True) for k in ('root', 'train_root', 'test_root', 'class_mapping', 'splits_mat',
                                                  'train_split', 'test_split')},
    'train.seed': non_negative_int(), 'correspondence.thresholds_px': positive_list(),
    'data.source': source_rule('probe'), 'data.image_size': size_pair(), 'data.train_frames': at_least(1),
    'data.test_frames': at_least(1), 'data.views': at_least(1), 'data.pair_gap': at_least(1),
    'data.depth_scale': positive(), 'data.every': at_least(1), 'data.max_depth': positive(),
    'train.steps': at_least(1), 'train.batch_size': at_least(1), 'optim.lr': positive(),
    'optim.weight_decay': non_negative(), 'train.hidden': at_least(1), 'train.device': one_of(DEVICES),
    'correspondence.max_pairs': at_least(1), 'correspondence.max_queries': at_least(1),
    'correspondence.occlusion_tolerance': in_unit(low_open=True), 'figure_samples': at_least(1)}
PROBE_RELATIONS = (
    Relation(('data.train_root', 'data.test_root'),
             lambda c: canonical(c.data.source) != 'folder' or bool(c.data.train_root and c.data.test_root),
             lambda c: 'data.source=folder needs data.train_root and data.test_root', ('data.source=folder',)),
    Relation(('data.root',),
             lambda c: canonical(c.data.source) not in ('nyuv2', 'scannet', '7scenes') or bool(c.data.root),
             lambda c: f'data.source={c.data.source} needs data.root', ('data.source=nyu',)))


PROBE_RENAMED = {'train.lr': 'optim.lr', 'train.weight_decay': 'optim.weight_decay'}  # old names, still read


@dataclass
class ProbeConfig(ValidatedConfig, knobs=PROBE_KNOBS, relations=PROBE_RELATIONS, renamed=PROBE_RENAMED):
    tasks: List[str] = field(default_factory=lambda: list(PROBE_TASKS))
    quick: bool = False                   # tiny budget for smoke tests (< 2 min on 2 CPU cores for ViT-Ti)
    model: ProbeModelConfig = field(default_factory=ProbeModelConfig)
    features: ProbeFeatureConfig = field(default_factory=ProbeFeatureConfig)
    data: ProbeDataConfig = field(default_factory=ProbeDataConfig)
    optim: ProbeOptimConfig = field(default_factory=ProbeOptimConfig)
    train: ProbeTrainConfig = field(default_factory=ProbeTrainConfig)
    correspondence: ProbeCorrespondenceConfig = field(default_factory=ProbeCorrespondenceConfig)
    figure_samples: int = 4

    def apply_quick(self) -> None:
        """``quick``: a smoke-test budget; explicit sizes in the file still count as the full run's."""
        if self.quick:
            d = self.data
            d.train_frames, d.test_frames = min(d.train_frames, 24), min(d.test_frames, 6)
            self.train.steps = min(self.train.steps, 60)
            self.train.hidden = min(self.train.hidden, 64)
            self.correspondence.max_pairs = min(self.correspondence.max_pairs, 4)


def load_probe_config(path=None, overrides=()) -> ProbeConfig:
    cfg = load_dataclass_config(ProbeConfig, path, overrides)
    ensure_valid(cfg)
    cfg.apply_quick()
    return cfg
