"""Probe frames from each source, resized to ``data.image_size`` and held in memory as tensors.

Every source reuses the datasets module's readers; this adds only poses (for correspondence) and pairs:
- ``synthetic``: train rooms from ``data.train_seed``, test rooms from ``data.test_seed`` (disjoint); the test
  rooms' extra camera poses (``render_views``) give the correspondence pairs. Depth without sensor noise: the
  normals are differentiated from it.
- ``folder``: ``mask3d data synth`` layout (rgb/, depth/, semantic/, intrinsics/, optionally pose/NAME.txt);
  frames named ROOM_VIEW pair up within a room. ``depth/`` of synthetic rooms carries simulated sensor noise;
  where ``depth_clean/NAME.npy`` exists (written by ``mask3d data synth``: the noise-free ray-cast depth) the
  normals are differentiated from it instead (``ProbeSplit.depth_clean``); the depth probe keeps ``depth/``.
- ``nyuv2`` (also ``nyu``, ``nyu-mat``): the labelled .mat with the official train/test splits (no poses).
- ``scannet``: exported scenes (color/, depth/, intrinsic/, pose/); consecutive kept frames of a scene pair up.
``nyuv2`` and ``scannet`` read the first ``data.train_frames`` / ``data.test_frames`` frames of each split.
- ``7scenes``: the datasets module's 7-Scenes reader (a sequence or scene folder: frame-*.color.png|jpg,
  .depth.png, .pose.txt); the first two thirds of the frames train, the last third tests (consecutive frames are
  near-duplicates).
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ...errors import ConfigError, DataError, MissingDataError
from ..data.folder import read_pose
from ..data.registry import get as get_dataset
from ..data.transforms import JointTransform

log = logging.getLogger(__name__)


@dataclass
class ProbeSplit:
    """Frames as stacked tensors; optional fields are None where the source lacks them."""
    rgb: torch.Tensor                           # [N, 3, H, W] normalised with the backbone's mean/std
    depth: torch.Tensor                         # [N, 1, H, W] metres, 0 = invalid
    intrinsics: Optional[torch.Tensor]          # [N, 3, 3] at the resized size
    semantic: Optional[torch.Tensor] = None     # [N, H, W] class ids, 255 = ignore
    pose: Optional[torch.Tensor] = None         # [N, 4, 4] camera-to-world
    pairs: List[Tuple[int, int]] = field(default_factory=list)
    class_names: Optional[Tuple[str, ...]] = None
    sources: List[str] = field(default_factory=list)
    depth_clean: Optional[torch.Tensor] = None  # [N, 1, H, W] noise-free depth for normals, where the source has it

    def __len__(self) -> int:
        return len(self.rgb)

    def frame(self, i: int) -> Dict[str, torch.Tensor]:
        return {'depth': self.depth[i], 'intrinsics': self.intrinsics[i], 'pose': self.pose[i]}


def _stack(samples: Sequence[Dict[str, object]], image_size, mean, std, class_names=None,
           has_intrinsics: bool = True, desc: str = '') -> ProbeSplit:
    transform = JointTransform(image_size, scale=(1.0, 1.0), hflip=0.0, mean=mean, std=std)
    rng = np.random.default_rng(0)  # scale (1, 1): the crop is the whole image, nothing is random
    out = [transform(s, rng) for s in samples]
    labelled = all('semantic' in s for s in samples)
    posed = any(s.get('pose') is not None for s in samples)  # a frame without a pose: NaN, left out of pairs
    return ProbeSplit(
        rgb=torch.stack([o['rgb'] for o in out]), depth=torch.stack([o['depth'] for o in out]),
        intrinsics=torch.stack([o['intrinsics'] for o in out]) if has_intrinsics else None,
        semantic=torch.stack([o['semantic'] for o in out]) if labelled else None,
        pose=torch.stack([torch.as_tensor(np.asarray(s['pose'], np.float64)) if s.get('pose') is not None else
                          torch.full((4, 4), float('nan'), dtype=torch.float64) for s in samples]) if posed else None,
        class_names=tuple(class_names) if class_names is not None and labelled else None,
        sources=[str(s.get('source', i)) for i, s in enumerate(samples)])


def _read(dataset, indices, desc: str):
    from tqdm.auto import tqdm
    return [dataset[i] for i in tqdm(indices, desc=desc, unit='frame')]


def _sequence_pairs(groups: Sequence[str], gap: int, pose: Optional[torch.Tensor]) -> List[Tuple[int, int]]:
    """Frame k with frame k + gap of the same group (room, scene), in reading order, both with a pose."""
    if pose is None:
        return []
    ok = torch.isfinite(pose).flatten(1).all(1).tolist()
    return [(i, i + gap) for i in range(len(groups) - gap) if groups[i] == groups[i + gap] and ok[i] and ok[i + gap]]


def _synthetic(d, mean, std, with_pairs: bool, max_pairs: int):
    from tqdm.auto import tqdm

    from ..data.synthetic import CLASS_NAMES, render_scene, render_views
    h, w = d.image_size
    train = [render_scene(d.train_seed, i, h, w, sensor_noise=False)
             for i in tqdm(range(d.train_frames), desc='render train', unit='frame')]
    test = [render_scene(d.test_seed, i, h, w, sensor_noise=False)
            for i in tqdm(range(d.test_frames), desc='render test', unit='frame')]
    pairs = None
    if with_pairs and d.views > 1:
        rooms = min(max_pairs, d.test_frames)
        frames, index = [], []
        for i in tqdm(range(rooms), desc='render views', unit='room'):
            views = render_views(d.test_seed, i, d.views, h, w, sensor_noise=False)
            base = len(frames)
            frames += views
            index += [(base, base + k) for k in range(1, len(views))]
        pairs = _stack(frames, d.image_size, mean, std)
        pairs.pairs = index
    return (_stack(train, d.image_size, mean, std, CLASS_NAMES), _stack(test, d.image_size, mean, std, CLASS_NAMES),
            pairs)


def _clean_depth(root: Path, stems: Sequence[str], samples, image_size, mean, std) -> Optional[torch.Tensor]:
    """``root/depth_clean/STEM.npy`` of every frame, resized like the frames; None unless every frame has one."""
    files = [root / 'depth_clean' / f'{stem}.npy' for stem in stems]
    if not files or not all(f.is_file() for f in files):
        return None
    clean = []
    for f, s in zip(files, samples):
        depth = np.load(f, allow_pickle=False).astype(np.float32)
        if depth.shape != tuple(s['depth'].shape[-2:]):
            raise DataError(f'{f}: clean depth {depth.shape} does not match the frame\'s depth '
                              f'{tuple(s["depth"].shape[-2:])}')
        clean.append({'rgb': s['rgb'], 'depth': depth[None]})
    return _stack(clean, image_size, mean, std, has_intrinsics=False).depth


def _folder(root, d, mean, std, desc):
    from ..data.folder import RGBDFolder
    ds = RGBDFolder(root, depth_scale=d.depth_scale)
    samples = _read(ds, range(len(ds)), desc)
    stems = [rgb.stem for rgb, _ in ds.frames]
    for s, stem in zip(samples, stems):
        s['pose'] = read_pose(Path(root) / 'pose' / f'{stem}.txt')
    has_k = ds.intrinsics is not None or all((Path(root) / 'intrinsics' / f'{stem}.txt').is_file() for stem in stems)
    split = _stack(samples, d.image_size, mean, std, getattr(ds, 'class_names', None), has_k)
    split.depth_clean = _clean_depth(Path(root), stems, samples, d.image_size, mean, std)
    split.pairs = _sequence_pairs([stem.rsplit('_', 1)[0] if '_' in stem else '' for stem in stems], d.pair_gap,
                                  split.pose)
    return split


def _scannet(d, split_file, limit, mean, std, desc):
    from ..data.scannet import ScanNetFrames
    ds = ScanNetFrames(d.root, split=split_file, every=d.every)
    samples = _read(ds, range(min(limit, len(ds))), desc)
    for s, (color, _) in zip(samples, ds.frames):
        s['pose'] = read_pose(color.parent.parent / 'pose' / f'{color.stem}.txt')
    split = _stack(samples, d.image_size, mean, std)
    split.pairs = _sequence_pairs(ds._scene_of[:len(split)], d.pair_gap, split.pose)
    return split


def _seven_scenes(d, mean, std):
    from ..data.seven_scenes import SevenScenesFrames
    ds = SevenScenesFrames(d.root)
    if len(ds) < 3:
        raise MissingDataError(f'{d.root}: {len(ds)} 7-Scenes frame(s); the probe needs at least 3')
    samples = _read(ds, range(len(ds)), 'read 7-Scenes')
    cut = 2 * len(samples) // 3
    train, test = _stack(samples[:cut], d.image_size, mean, std), _stack(samples[cut:], d.image_size, mean, std)
    test.pairs = _sequence_pairs([str(seq) for seq in ds.sequence_of[cut:]], d.pair_gap, test.pose)
    return train, test


def load_probe_data(cfg, mean, std) -> Tuple[ProbeSplit, ProbeSplit, Optional[ProbeSplit]]:
    """(train, test, pairs): ``pairs`` holds the posed frames and their (i, j) pairs, or is None. The source opens
    through the dataset registry (``training/data/registry.py``): one of the ``open_*`` functions below."""
    return get_dataset(cfg.data.source, 'probe').opener('probe')(cfg, mean, std)


def _with_pairs(train: ProbeSplit, test: ProbeSplit):
    return train, test, (test if test.pairs else None)


# the `probe` openers of the dataset registry: (cfg, mean, std) -> (train, test, pairs or None)


def open_synthetic(cfg, mean, std):
    return _synthetic(cfg.data, mean, std, 'correspondence' in cfg.tasks, cfg.correspondence.max_pairs)


def open_folder(cfg, mean, std):
    d = cfg.data
    return _with_pairs(_folder(d.train_root, d, mean, std, 'read train'),
                       _folder(d.test_root, d, mean, std, 'read test'))


def open_nyuv2(cfg, mean, std):
    from ..data.nyu import NYUv2Labeled
    d = cfg.data
    if not (d.class_mapping and d.splits_mat):
        raise ConfigError(f'data.source={d.source} needs data.class_mapping (classMapping40.mat) and data.splits_mat '
                          '(splits.mat, the official train/test split)')
    sets = [NYUv2Labeled(d.root, class_mapping_40=d.class_mapping, split=s, splits_mat=d.splits_mat,
                         classes=d.nyu_classes, depth='filled') for s in ('train', 'test')]
    limits = (d.train_frames, d.test_frames)
    return _with_pairs(*[_stack(_read(ds, range(min(n, len(ds))), f'read {name}'), d.image_size, mean, std,
                                ds.class_names) for ds, n, name in zip(sets, limits, ('train', 'test'))])


def open_scannet(cfg, mean, std):
    d = cfg.data
    return _with_pairs(_scannet(d, d.train_split, d.train_frames, mean, std, 'read train'),
                       _scannet(d, d.test_split, d.test_frames, mean, std, 'read test'))


def open_seven_scenes(cfg, mean, std):
    return _with_pairs(*_seven_scenes(cfg.data, mean, std))
