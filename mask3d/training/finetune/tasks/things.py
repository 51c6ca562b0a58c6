"""The instance task's view of a dataset: only the thing classes (not wall, floor, ceiling), relabelled 0..K-1,
each instance a mask; which classes are things depends on the dataset (:func:`thing_classes`)."""
from typing import Dict, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset

from ....errors import ConfigError
from ...data.nyu import NYU13_NAMES, NYU40_NAMES, instances_from_pairs
from ...data.scannet import SCANNET18_NYU40_IDS
from ...data.synthetic import CLASS_NAMES

SYNTHETIC_STUFF = 3                       # wall, floor, ceiling: semantic classes, not instances
SYNTHETIC_THINGS = CLASS_NAMES[SYNTHETIC_STUFF:]
# NYUv2 instance protocol (Pri3D nyu2coco): the 9 thing classes of the 13-class labels
NYU13_THINGS = ('bed', 'books', 'chair', 'furniture', 'picture', 'sofa', 'table', 'tv', 'window')
SCANNET18_NAMES = tuple(NYU40_NAMES[i - 1] for i in SCANNET18_NYU40_IDS)


def thing_classes(source: str, nyu_classes: int) -> Tuple[Sequence[int], Tuple[str, ...]]:
    """(the dataset's class ids of the thing classes, their names) for ``source`` (a canonical dataset name)."""
    if source == 'synthetic':
        return range(SYNTHETIC_STUFF, len(CLASS_NAMES)), SYNTHETIC_THINGS
    if source == 'nyuv2':
        base = NYU13_NAMES if nyu_classes == 13 else NYU40_NAMES
        things = NYU13_THINGS if nyu_classes == 13 else SCANNET18_NAMES
        return [base.index(n) for n in things], things
    if source in ('scannet', 'scannet-25k'):  # readers already give the 18 classes, 0..17
        return range(18), SCANNET18_NAMES
    raise ConfigError(f'data.source={source} has no instance annotations; use synthetic, scannet, scannet-25k or '
                      f'nyuv2')


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
