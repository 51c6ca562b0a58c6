"""Labelled frames for each task and dataset, and the samples the fine-tuning loop batches.

The readers are the datasets module's (ScanNet, NYUv2, Cityscapes, RGB-D folders, synthetic rooms); here they are
chosen from a config, checked against the task (class count, the labels the task needs) and turned into tensors
with the same (seed, epoch, index) randomness as pre-training, so a resumed run sees the same batches.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import ConfigError
from ..data.nyu import NYU13_NAMES, NYU40_NAMES, instances_from_pairs
from ..data.registry import get as get_dataset
from ..data.scannet import SCANNET18_NYU40_IDS
from ..data.synthetic import CLASS_NAMES
from ..data.transforms import JointTransform
from ..runtime.skips import load_skipping
from .config import FinetuneConfig

SYNTHETIC_STUFF = 3                       # wall, floor, ceiling: semantic classes, not instances
SYNTHETIC_THINGS = CLASS_NAMES[SYNTHETIC_STUFF:]
# NYUv2 instance protocol (Pri3D nyu2coco): the 9 thing classes of the 13-class labels
NYU13_THINGS = ('bed', 'books', 'chair', 'furniture', 'picture', 'sofa', 'table', 'tv', 'window')


class ThingInstances(Dataset):
    """Keeps the instances whose class is a thing class, relabelled 0..K-1 in ``things`` order; semantic
    instance maps (``instance`` [H, W]) are split into masks first."""

    def __init__(self, frames, class_ids: Sequence[int], names: Sequence[str], min_pixels: int = 0):
        self.frames, self.min_pixels = frames, min_pixels
        self.lut = np.full(256, -1, np.int64)
        for new, old in enumerate(class_ids):
            self.lut[old] = new
        self.class_names = tuple(names)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Dict[str, object]:
        sample = dict(self.frames[index])
        if 'instance_masks' not in sample:
            if 'instance' not in sample:
                raise ConfigError(f"{sample.get('source', index)}: no instance annotation (the instance task needs "
                                  f"instance-filt/, instance/ or the .mat's instances)")
            sample.update(instances_from_pairs(sample['semantic'], np.asarray(sample['instance'])))
        masks, labels = np.asarray(sample['instance_masks']), np.asarray(sample['instance_labels'], np.int64)
        new = self.lut[np.clip(labels, 0, 255)] if len(labels) else labels
        keep = (new >= 0) & (masks.reshape(len(masks), -1).sum(1) >= max(self.min_pixels, 1)) if len(masks) else \
            np.zeros(0, bool)
        sample['instance_masks'], sample['instance_labels'] = masks[keep], new[keep]
        sample.pop('instance_boxes', None)  # recomputed from the transformed masks
        return sample


# the `finetune` openers of the dataset registry (training/data/registry.py): (cfg, root, split, val, skip_bad)


def open_synthetic(cfg: FinetuneConfig, root, split, val: bool, skip_bad: bool):
    from ..data.synthetic import SyntheticRGBD
    d = cfg.data
    return SyntheticRGBD(length=d.synthetic_val_length if val else d.synthetic_length,
                         seed=d.synthetic_val_seed if val else d.synthetic_seed, image_size=tuple(d.image_size))


def open_scannet(cfg: FinetuneConfig, root, split, val: bool, skip_bad: bool):
    from ..data.scannet import ScanNetLabeledFrames
    if not cfg.data.label_map:
        raise ConfigError('data.label_map (scannetv2-labels.combined.tsv) is required for data.source=scannet')
    return ScanNetLabeledFrames(root, cfg.data.label_map, split=split, every=cfg.data.every, skip_bad=skip_bad)


def open_scannet_25k(cfg: FinetuneConfig, root, split, val: bool, skip_bad: bool):
    from ..data.scannet import ScanNet25kFrames
    return ScanNet25kFrames(root, split=split, every=cfg.data.every, skip_bad=skip_bad)


def open_nyuv2(cfg: FinetuneConfig, root, split, val: bool, skip_bad: bool):
    from ..data.nyu import NYUv2Labeled
    d = cfg.data
    if not d.class_mapping:
        raise ConfigError('data.class_mapping (classMapping40.mat) is required for data.source=nyuv2')
    return NYUv2Labeled(root, class_mapping_40=d.class_mapping, split=split or 'all', splits_mat=d.splits_mat,
                        classes=d.nyu_classes, depth=d.nyu_depth)


def open_nyu_raw(cfg: FinetuneConfig, root, split, val: bool, skip_bad: bool):
    from ..data.nyu import NYUSyncFrames
    return NYUSyncFrames(root, depth_scale=cfg.data.depth_scale, skip_bad=skip_bad)


def open_cityscapes(cfg: FinetuneConfig, root, split, val: bool, skip_bad: bool):
    from ..data.cityscapes import CityscapesRGBD
    return CityscapesRGBD(root, split=split or ('val' if val else 'train'), with_depth=cfg.task == 'depth')


def open_folder(cfg: FinetuneConfig, root, split, val: bool, skip_bad: bool):
    from ..data.folder import RGBDFolder
    return RGBDFolder(root, depth_scale=cfg.data.depth_scale, skip_bad=skip_bad)


def _for_task(cfg: FinetuneConfig, frames, source: str):
    """Wrap for the instance task and check the class count against the dataset's."""
    names = getattr(frames, 'class_names', None)
    if cfg.task == 'instance':
        if source == 'synthetic':
            frames = ThingInstances(frames, range(SYNTHETIC_STUFF, len(CLASS_NAMES)), SYNTHETIC_THINGS,
                                    cfg.data.min_instance_pixels)
        elif source == 'nyuv2':
            base = NYU13_NAMES if cfg.data.nyu_classes == 13 else NYU40_NAMES
            things = NYU13_THINGS if cfg.data.nyu_classes == 13 else tuple(NYU40_NAMES[i - 1] for i in SCANNET18_NYU40_IDS)
            frames = ThingInstances(frames, [base.index(n) for n in things], things, cfg.data.min_instance_pixels)
        elif source in ('scannet', 'scannet-25k'):  # readers already give the 18 classes, 0..17
            frames = ThingInstances(frames, range(18), [NYU40_NAMES[i - 1] for i in SCANNET18_NYU40_IDS],
                                    cfg.data.min_instance_pixels)
        else:
            raise ConfigError(f'data.source={source} has no instance annotations; use synthetic, scannet, '
                              f'scannet-25k or nyuv2')
        names = frames.class_names
    if cfg.task in ('semseg', 'instance') and names is not None and len(names) != cfg.model.num_classes:
        raise ConfigError(f'model.num_classes={cfg.model.num_classes} but {source} has {len(names)} '
                          f'{"thing " if cfg.task == "instance" else ""}classes for {cfg.task} '
                          f'({", ".join(names)}); set model.num_classes={len(names)}')
    if cfg.task == 'semseg' and hasattr(frames, 'num_classes'):  # label ids are checked as each file is read
        frames.num_classes = cfg.model.num_classes
    return frames


def build_task_frames(cfg: FinetuneConfig, split: str, *, training: bool = True):
    """The frames of ``split`` ('train' or 'val') for ``cfg.task``, checked against the config. ``data.skip_bad``
    applies to the training frames only (``training=False``: scoring the train split); evaluation never skips, since
    a score over a silently shrunk split is not comparable (docs/finetuning.md)."""
    d, val = cfg.data, split == 'val'
    source = (d.val_source or d.source) if val else d.source
    root = (d.val_root or d.root) if val else d.root
    dataset = get_dataset(source, 'finetune')
    frames = dataset.opener('finetune')(cfg, root, d.val_split if val else d.train_split, val,
                                        skip_bad=d.skip_bad and training and not val)
    from ..data.sanity import warn_if_depth_implausible  # one line: a wrong depth unit gives NaN depth metrics
    warn_if_depth_implausible(frames, f'{split} data.source={source}',
                              max_depth=cfg.eval.max_depth if cfg.task == 'depth' else None)
    return _for_task(cfg, frames, dataset.name)


def task_transform(cfg: FinetuneConfig, train: bool, mean, std) -> JointTransform:
    d = cfg.data
    if train:
        return JointTransform(d.image_size, scale=tuple(d.scale), hflip=d.hflip, color_jitter=d.color_jitter,
                              mean=mean, std=std)
    return JointTransform(d.image_size, scale=(1.0, 1.0), hflip=0.0, mean=mean, std=std)


TARGET_KEYS = {'semseg': ('semantic',), 'depth': ('depth',), 'instance': ('instance_masks', 'instance_labels')}


class TaskSamples(Dataset):
    """Indexed by ``(epoch, index)`` (training, see EpochIndexSampler) or by ``index`` (evaluation).

    Returns the transformed ``rgb``, task targets and ``skipped`` (bad frames passed over with ``skip_bad``); with
    ``keep_full_target`` also the untransformed ground
    truth (``full_semantic`` / ``full_depth``), so evaluation scores at the dataset's own resolution.
    """

    def __init__(self, frames, task: str, transform: JointTransform, seed: int, keep_full_target: bool = False,
                 skip_bad: bool = False):
        self.frames, self.task, self.transform, self.seed = frames, task, transform, seed
        self.keep_full_target, self.skip_bad = keep_full_target, skip_bad

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key) -> Dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        frame, skipped = load_skipping(self.frames, index, skip_bad=self.skip_bad)  # data.skip_bad: training only
        missing = [k for k in TARGET_KEYS[self.task] if k not in frame]
        if missing:
            raise ConfigError(f"{frame.get('source', index)}: no {'/'.join(missing)} for the {self.task} task")
        keep = ('rgb', 'intrinsics') + TARGET_KEYS[self.task]
        out = self.transform({k: frame[k] for k in keep if k in frame}, rng)
        out['index'] = torch.tensor(index)
        out['skipped'] = torch.tensor(skipped)
        if self.keep_full_target and self.task == 'semseg':
            out['full_semantic'] = torch.as_tensor(np.asarray(frame['semantic'], np.int64))
        if self.keep_full_target and self.task == 'depth':
            out['full_depth'] = torch.as_tensor(np.asarray(frame['depth'], np.float32)).reshape(
                np.asarray(frame['depth']).shape[-2:])
        return out


def collate(batch: List[Dict[str, torch.Tensor]]) -> Dict[str, object]:
    """Stack what has one shape per batch; keep per-image lists for instances and full-resolution targets."""
    out: Dict[str, object] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        same = all(v.shape == values[0].shape for v in values)
        out[key] = torch.stack(values) if same and not key.startswith(('instance_', 'full_')) else values
    return out
