"""Probe configuration: training/configs/probe/*.yaml, ``--set`` overrides, checked before any work starts."""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ...errors import ConfigError
from ..config import load_dataclass_config

PROBE_TASKS = ('depth', 'normals', 'semseg', 'correspondence')
PROBE_SOURCES = ('synthetic', 'folder', 'nyu', 'scannet', '7scenes')


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
class ProbeTrainConfig:
    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 128                     # depth / normals probe width
    seed: int = 0
    device: str = 'auto'


@dataclass
class ProbeCorrespondenceConfig:
    thresholds_px: List[float] = field(default_factory=lambda: [5.0, 10.0, 20.0])  # at data.image_size
    max_pairs: int = 16
    max_queries: int = 1000               # ground-truth correspondences scored per pair (evenly subsampled)
    occlusion_tolerance: float = 0.05     # relative depth difference still counted as visible


@dataclass
class ProbeConfig:
    tasks: List[str] = field(default_factory=lambda: list(PROBE_TASKS))
    quick: bool = False                   # tiny budget for smoke tests (< 2 min on 2 CPU cores for ViT-Ti)
    model: ProbeModelConfig = field(default_factory=ProbeModelConfig)
    features: ProbeFeatureConfig = field(default_factory=ProbeFeatureConfig)
    data: ProbeDataConfig = field(default_factory=ProbeDataConfig)
    train: ProbeTrainConfig = field(default_factory=ProbeTrainConfig)
    correspondence: ProbeCorrespondenceConfig = field(default_factory=ProbeCorrespondenceConfig)
    figure_samples: int = 4

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        d, t = self.data, self.train
        bad = [x for x in self.tasks if x not in PROBE_TASKS]
        if bad or not self.tasks:
            raise ConfigError(f'tasks must be a non-empty list of {PROBE_TASKS}, got {self.tasks}')
        if d.source not in PROBE_SOURCES:
            raise ConfigError(f'data.source must be one of {PROBE_SOURCES}, got {d.source!r}')
        if d.source == 'folder' and not (d.train_root and d.test_root):
            raise ConfigError('data.source=folder needs data.train_root and data.test_root')
        if d.source in ('nyu', 'scannet', '7scenes') and not d.root:
            raise ConfigError(f'data.source={d.source} needs data.root')
        if len(d.image_size) != 2 or any(s <= 0 for s in d.image_size):
            raise ConfigError(f'data.image_size must be [H, W], got {d.image_size}')
        blocks = self.features.blocks
        if not blocks or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocks):
            raise ConfigError(f'features.blocks must be a non-empty list of block indices (e.g. [-4, -3, -2, -1], '
                              f'the last four), got {blocks!r}')
        for name, value in (('train.steps', t.steps), ('train.batch_size', t.batch_size),
                            ('data.train_frames', d.train_frames), ('data.test_frames', d.test_frames),
                            ('data.views', d.views), ('data.pair_gap', d.pair_gap),
                            ('features.batch_size', self.features.batch_size)):
            if value < 1:
                raise ConfigError(f'{name} must be >= 1, got {value}')
        if t.lr <= 0:
            raise ConfigError(f'train.lr must be > 0, got {t.lr}')
        if t.device not in ('auto', 'cpu', 'cuda'):
            raise ConfigError(f'train.device must be auto, cpu or cuda, got {t.device!r}')

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
    cfg.validate()
    cfg.apply_quick()
    return cfg
