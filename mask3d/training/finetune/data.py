"""Labelled frames for each task and dataset, and the samples the fine-tuning loop batches.

The readers are the datasets module's (ScanNet, NYUv2, Cityscapes, RGB-D folders, synthetic rooms); here they are
chosen from a config, checked against the task (class count, the labels the task needs) and turned into tensors
with the same (seed, epoch, index) randomness as pre-training, so a resumed run sees the same batches.
"""
from typing import Dict, List, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import ConfigError
from ..data.registry import get as get_dataset
from ..data.transforms import JointTransform
from ..runtime.skips import load_skipping
from .config import FinetuneConfig
from .tasks import Task, get_task

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
    with_depth = 'depth' in get_task(cfg.task).target_keys  # disparity PNGs are read (and required) only for depth
    return CityscapesRGBD(root, split=split or ('val' if val else 'train'), with_depth=with_depth)


def open_folder(cfg: FinetuneConfig, root, split, val: bool, skip_bad: bool):
    from ..data.folder import RGBDFolder
    return RGBDFolder(root, depth_scale=cfg.data.depth_scale, skip_bad=skip_bad)


def build_task_frames(cfg: FinetuneConfig, split: str, *, training: bool = True):
    """The frames of ``split`` ('train' or 'val') as ``cfg.task`` reads them (``Task.wrap_frames``), their class
    count checked against the config (``Task.check_classes``). ``data.skip_bad``
    applies to the training frames only (``training=False``: scoring the train split); evaluation never skips, since
    a score over a silently shrunk split is not comparable (docs/finetuning.md)."""
    d, val, task = cfg.data, split == 'val', get_task(cfg.task)
    source = (d.val_source or d.source) if val else d.source
    root = (d.val_root or d.root) if val else d.root
    dataset = get_dataset(source, 'finetune')
    frames = dataset.opener('finetune')(cfg, root, d.val_split if val else d.train_split, val,
                                        skip_bad=d.skip_bad and training and not val)
    from ..data.sanity import warn_if_depth_implausible  # one line: a wrong depth unit gives NaN depth metrics
    warn_if_depth_implausible(frames, f'{split} data.source={source}',
                              max_depth=task.plausible_max_depth(cfg))
    return task.check_classes(task.wrap_frames(frames, dataset.name, cfg), dataset.name, cfg)


def task_transform(cfg: FinetuneConfig, train: bool, mean, std) -> JointTransform:
    d = cfg.data
    if train:
        return JointTransform(d.image_size, scale=tuple(d.scale), hflip=d.hflip, color_jitter=d.color_jitter,
                              mean=mean, std=std)
    return JointTransform(d.image_size, scale=(1.0, 1.0), hflip=0.0, mean=mean, std=std)


class TaskSamples(Dataset):
    """Indexed by ``(epoch, index)`` (training, see EpochIndexSampler) or by ``index`` (evaluation).

    Returns the transformed ``rgb``, the targets of ``task`` (a :class:`Task` or its name; ``Task.target_keys``) and
    ``skipped`` (bad frames passed over with ``skip_bad``); with ``keep_full_target`` also the untransformed ground
    truth (``Task.full_target``: ``full_semantic`` / ``full_depth``), so evaluation scores at the dataset's own
    resolution.
    """

    def __init__(self, frames, task: Union[Task, str], transform: JointTransform, seed: int,
                 keep_full_target: bool = False, skip_bad: bool = False):
        self.task = get_task(task) if isinstance(task, str) else task
        self.frames, self.transform, self.seed = frames, transform, seed
        self.keep_full_target, self.skip_bad = keep_full_target, skip_bad

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key) -> Dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        frame, skipped = load_skipping(self.frames, index, skip_bad=self.skip_bad)  # data.skip_bad: training only
        missing = [k for k in self.task.target_keys if k not in frame]
        if missing:
            raise ConfigError(f"{frame.get('source', index)}: no {'/'.join(missing)} for the {self.task.name} task")
        keep = ('rgb', 'intrinsics') + self.task.target_keys
        out = self.transform({k: frame[k] for k in keep if k in frame}, rng)
        out['index'] = torch.tensor(index)
        out['skipped'] = torch.tensor(skipped)
        if self.keep_full_target:
            out.update(self.task.keep_full_target(frame))
        return out


def collate(batch: List[Dict[str, torch.Tensor]]) -> Dict[str, object]:
    """Stack what has one shape per batch; keep per-image lists for instances and full-resolution targets."""
    out: Dict[str, object] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        same = all(v.shape == values[0].shape for v in values)
        out[key] = torch.stack(values) if same and not key.startswith(('instance_', 'full_')) else values
    return out
