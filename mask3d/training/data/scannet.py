"""ScanNet v2 RGB-D frames for pre-training: scenes exported from ``.sens`` files or ``scannet_frames_25k``.

Both layouts hold one folder per scene with ``color/*.jpg`` and ``depth/*.png`` (uint16 millimetres, 0 = no
measurement); colour (1296x968 in exported scenes) is resized to the 640x480 depth grid. The depth intrinsics
come from ``intrinsic/intrinsic_depth.txt`` (exported) or ``intrinsics_depth.txt`` (25k), as 4x4 matrices.
``split`` is an official list such as ``scannetv2_train.txt`` (one scene name per line).
A colour frame without its depth partner (or the reverse), a label folder missing a frame's label, and a scene
whose ``extract-sens`` export did not finish are errors naming the file, never silently dropped frames.
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ...constants import IGNORE_INDEX
from ...errors import LabelRangeError
from ...errors import DataError
from .folder import (RGBDFrames, check_partners, files_by_stem, present, read_intrinsics,
                     read_label)
from .scannet_sens import check_export

DEPTH_SCALE = 1000.0  # ScanNet depth PNGs are millimetres


def read_scene_list(path: Union[str, os.PathLike]) -> List[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: split file not found')
    scenes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not scenes:
        raise DataError(f'{path}: empty split')
    return scenes


class ScanNetFrames(RGBDFrames):
    resize_rgb_to_depth = True

    def __init__(self, root: Union[str, os.PathLike], split: Optional[Union[str, os.PathLike]] = None,
                 every: int = 1, skip_bad: bool = False):
        self.root = Path(root)
        skip = self._skipper(skip_bad)
        self.depth_scale = DEPTH_SCALE
        if not self.root.is_dir():
            raise DataError(f'{self.root}: ScanNet root not found')
        if every < 1:
            raise DataError(f'every must be >= 1, got {every}')
        scenes = read_scene_list(split) if split else sorted(p.name for p in self.root.iterdir()
                                                             if (p / 'color').is_dir())
        self.frames, self._scene_of = [], []
        self._intrinsics: Dict[str, Optional[np.ndarray]] = {}
        for scene in scenes:
            folder = self.root / scene
            if not (folder / 'color').is_dir() or not (folder / 'depth').is_dir():
                raise DataError(f'{folder}: scene from the split has no color/ and depth/ folders')
            check_export(folder)
            colors = files_by_stem(folder / 'color', ('.jpg',), 'colour', skip=skip)
            depths = files_by_stem(folder / 'depth', ('.png',), 'depth', skip=skip)
            keys = sorted(check_partners(colors, depths, folder, skip), key=lambda k: (0, int(k), k) if k.isdigit()
                          else (1, 0, k))
            for key in keys[::every]:
                self.frames.append((colors[key], depths[key]))
                self._scene_of.append(scene)
            self._intrinsics[scene] = self._read_intrinsics(folder)
        if not self.frames:
            raise DataError(f'{self.root}: no frames with both color/*.jpg and depth/*.png')

    @staticmethod
    def _read_intrinsics(folder: Path) -> Optional[np.ndarray]:
        for candidate in (folder / 'intrinsic' / 'intrinsic_depth.txt', folder / 'intrinsics_depth.txt'):
            if present(candidate):  # a broken link is named by the read, not passed over
                return read_intrinsics(candidate)
        return None

    def frame_intrinsics(self, index: int) -> Optional[np.ndarray]:
        return self._intrinsics[self._scene_of[index]]


# ---- labels ----------------------------------------------------------------------------------------------------
# The 20 ScanNet benchmark classes as NYU-40 ids (BenchmarkScripts VALID_CLASS_IDS); train ids are their order.
SCANNET20_NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SCANNET20_NAMES = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf',
                   'picture', 'counter', 'desk', 'curtain', 'refrigerator', 'shower curtain', 'toilet', 'sink',
                   'bathtub', 'otherfurniture')
# the 18 instance / detection classes: the 20 without wall and floor
SCANNET18_NYU40_IDS = SCANNET20_NYU40_IDS[2:]

_NYU40_TO_20 = np.full(256, IGNORE_INDEX, dtype=np.int64)
for _i, _nyu in enumerate(SCANNET20_NYU40_IDS):
    _NYU40_TO_20[_nyu] = _i


def load_label_map(tsv: Union[str, os.PathLike]) -> np.ndarray:
    """``scannetv2-labels.combined.tsv`` -> lookup table raw ScanNet id -> NYU-40 id (ids not listed: 0)."""
    import csv
    tsv = Path(tsv)
    if not tsv.is_file():
        raise DataError(f'{tsv}: label map not found')
    with open(tsv, newline='') as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
    if not rows or 'id' not in rows[0] or 'nyu40id' not in rows[0]:
        raise DataError(f'{tsv}: expected a tab-separated file with id and nyu40id columns')
    try:
        pairs = [(int(r['id']), int(r['nyu40id'])) for r in rows]
    except (TypeError, ValueError) as e:
        raise DataError(f'{tsv}: id and nyu40id must be integers ({e})') from e
    lut = np.zeros(max(i for i, _ in pairs) + 1, dtype=np.int64)
    for raw, nyu40 in pairs:
        lut[raw] = nyu40
    return lut


def raw_to_nyu40(raw: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Raw ``label-filt`` ids -> NYU-40; ids beyond the table map to 0 (void), as the benchmark scripts do."""
    out = np.zeros(raw.shape, dtype=np.int64)
    inside = raw < len(lut)
    out[inside] = lut[raw[inside]]
    return out


def nyu40_to_scannet20(nyu40: np.ndarray, where: str = '') -> np.ndarray:
    """NYU-40 ids -> train ids 0..19 (255 = void or a non-benchmark class)."""
    if nyu40.size and (nyu40.min() < 0 or nyu40.max() > 40):
        bad = np.unique(nyu40[(nyu40 < 0) | (nyu40 > 40)])
        raise LabelRangeError(f'{where}: label ids {", ".join(str(int(v)) for v in bad[:8])} in the NYU-40 labels '
                              f'are outside 0..40 (0 = unlabelled)')
    return _NYU40_TO_20[nyu40]


def scannet_instances(nyu40: np.ndarray, instance: np.ndarray, min_pixels: int = 0):
    """Instances of the 18 classes from a 25k-style ``instance`` PNG (value = nyu40 * 1000 + k): masks, train
    labels (0..17), xyxy boxes; masks under ``min_pixels`` are dropped (Pri3D drops < 1000)."""
    ids = [v for v in np.unique(instance) if v >= 1000 and (v // 1000) in SCANNET18_NYU40_IDS]
    masks, labels, boxes = [], [], []
    for v in ids:
        m = instance == v
        if m.sum() < max(min_pixels, 1):
            continue
        ys, xs = np.nonzero(m)
        masks.append(m)
        labels.append(SCANNET18_NYU40_IDS.index(int(v) // 1000))
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    h, w = instance.shape
    return {'instance_masks': np.stack(masks) if masks else np.zeros((0, h, w), bool),
            'instance_labels': np.array(labels, np.int64),
            'instance_boxes': np.array(boxes, np.float32).reshape(-1, 4)}


class _LabelledScanNet(ScanNetFrames):
    """Shared by the labelled ScanNet readers: the 20 class names and the instance size threshold."""

    def __init__(self, root, split=None, every: int = 1, min_instance_pixels: int = 0, skip_bad: bool = False):
        super().__init__(root, split=split, every=every, skip_bad=skip_bad)
        self.min_instance_pixels = min_instance_pixels
        self.class_names = SCANNET20_NAMES

    def _frame(self, index: int):
        """(RGB-D sample, scene folder, frame stem)."""
        color_path = self.frames[index][0]
        return ScanNetFrames.__getitem__(self, index), color_path.parent.parent, color_path.stem


class ScanNetLabeledFrames(_LabelledScanNet):
    """Exported scenes plus the unzipped ``*_2d-label-filt.zip`` / ``*_2d-instance-filt.zip``:
    ``SCENE/label-filt/{i}.png`` (uint16 raw ScanNet ids, colour resolution) -> NYU-40 through
    ``scannetv2-labels.combined.tsv`` -> 20-class train ids; ``SCENE/instance-filt/{i}.png`` (objectId + 1) ->
    instances of the 18 classes, each labelled with the majority NYU-40 class of its pixels. Labels are resized
    with nearest neighbour to the depth grid."""

    def __init__(self, root, label_map, split=None, every: int = 1, min_instance_pixels: int = 0,
                 skip_bad: bool = False):
        super().__init__(root, split=split, every=every, min_instance_pixels=min_instance_pixels, skip_bad=skip_bad)
        self.lut = load_label_map(label_map)

    def __getitem__(self, index: int):
        sample, scene, stem = self._frame(index)
        label_path = scene / 'label-filt' / f'{stem}.png'
        if not present(label_path):
            raise DataError(f'{label_path}: label-filt image missing (unzip {scene.name}_2d-label-filt.zip '
                                  f'into {scene})')
        size = sample['depth'].shape[-2:]
        nyu40 = raw_to_nyu40(read_label(label_path, size), self.lut)
        sample['semantic'] = nyu40_to_scannet20(nyu40, str(label_path))
        inst_path = scene / 'instance-filt' / f'{stem}.png'
        if (scene / 'instance-filt').is_dir():
            objects = read_label(inst_path, size)
            encoded = np.zeros_like(objects)
            for obj in np.unique(objects[objects > 0]):
                m = objects == obj
                classes, counts = np.unique(nyu40[m], return_counts=True)
                encoded[m] = classes[counts.argmax()] * 1000 + obj
            sample.update(scannet_instances(nyu40, encoded, self.min_instance_pixels))
        return sample


class ScanNet25kFrames(_LabelledScanNet):
    """``scannet_frames_25k``: colour, depth, ``label/`` (NYU-40 ids, 8-bit) -> 20-class train ids, and
    ``instance/`` (nyu40 * 1000 + k) -> instances of the 18 classes."""

    def __getitem__(self, index: int):
        sample, scene, stem = self._frame(index)
        size = sample['depth'].shape[-2:]
        if (scene / 'label').is_dir():  # a label folder must hold every frame's label (scannet_frames_test has none)
            label_path = scene / 'label' / f'{stem}.png'
            nyu40 = read_label(label_path, size)
            sample['semantic'] = nyu40_to_scannet20(nyu40, str(label_path))
            if (scene / 'instance').is_dir():
                sample.update(scannet_instances(nyu40, read_label(scene / 'instance' / f'{stem}.png', size),
                                                self.min_instance_pixels))
        return sample
