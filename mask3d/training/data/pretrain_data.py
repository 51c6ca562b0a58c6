"""From a dataset of RGB-D frames to pre-training batches: transforms, mask noise, sampling, resumption.

Every random choice for a sample (crop, flip, masks) comes from ``numpy.random.default_rng([seed, epoch, index])``,
so batches do not depend on worker count, rank count or on where a run was resumed.
"""
from typing import Dict, Iterator, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from ..runtime.skips import load_skipping
from .transforms import JointTransform


class PretrainSamples(Dataset):
    """Indexed by ``(epoch, index)``; returns rgb (normalised), depth (metres), mask_noise [2, N], skipped."""

    def __init__(self, frames: Dataset, transform: JointTransform, *, patch_size: int, seed: int,
                 skip_bad: bool = False, max_skips: int = 100):
        h, w = transform.size
        if h % patch_size or w % patch_size:
            raise ValueError(f'image size {h}x{w} is not divisible by the patch size {patch_size}')
        self.frames, self.transform, self.seed = frames, transform, seed
        self.num_patches = (h // patch_size) * (w // patch_size)
        self.skip_bad, self.max_skips = skip_bad, max_skips

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        epoch, index = key
        frame, skipped = load_skipping(self.frames, index, skip_bad=self.skip_bad, max_skips=self.max_skips)
        return self.prepare(frame, epoch, index, skipped)

    def prepare(self, frame: Dict[str, object], epoch: int, index: int, skipped: int = 0) -> Dict[str, torch.Tensor]:
        """A frame -> a training sample; every random choice comes from ``default_rng([seed, epoch, index])``
        (also used by the shard stream, where ``index`` is the frame's index in the source)."""
        rng = np.random.default_rng([self.seed, epoch, index])
        # pre-training needs only RGB-D: labels are dropped, so sources with and without them mix in one batch
        out = self.transform({k: frame[k] for k in ('rgb', 'rgb_size', 'depth', 'intrinsics') if k in frame}, rng)
        if 'rgb_encoded' in frame:  # colour decoded later, on a device (device_decode.py)
            out.update(rgb_encoded=frame['rgb_encoded'], rgb_size=torch.tensor(frame['rgb_size']),
                       rgb_source=frame['rgb_source'])
        out['mask_noise'] = torch.from_numpy(rng.random((2, self.num_patches), dtype=np.float32))
        out['skipped'] = torch.tensor(skipped)
        return out


class EpochIndexSampler(Sampler):
    """This rank's share of an epoch as ``(epoch, index)`` keys, optionally starting mid-epoch (resume).

    The permutation is DistributedSampler's (seeded by seed + epoch, drop_last), so 1 rank and N ranks see
    the same global order.
    """

    def __init__(self, length: int, *, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        self._sampler = DistributedSampler(range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                                           seed=seed, drop_last=True)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start
        self._sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self._sampler) - self.start

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        for i, index in enumerate(self._sampler):
            if i >= self.start:
                yield self.epoch, index
