"""NYU Depth v2: the labelled set (``nyu_depth_v2_labeled.mat``) and raw/sync frame folders.

The ``.mat`` is MATLAB v7.3 (HDF5), read with h5py; MATLAB is column-major, so every array comes out
axis-reversed (images ``(N, 3, W, H)``) and is transposed back here. Labels are raw ids 1..894 (0 = unlabelled),
mapped to NYU-40 with ``mapClass`` from ``classMapping40.mat`` and on to the 13 classes with the table below
(``class13Mapping.mat``'s ``labels13``). Train ids are class - 1, with 255 for unlabelled.
The 795/654 split comes from ``splits.mat`` (1-based indices).
"""
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ...constants import IGNORE_INDEX
from ...errors import LabelRangeError
from ...errors import DataError
from .folder import RGBDFrames, present

NYU40_NAMES = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf',
               'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow', 'mirror',
               'floor mat', 'clothes', 'ceiling', 'books', 'refridgerator', 'television', 'paper', 'towel',
               'shower curtain', 'box', 'whiteboard', 'person', 'night stand', 'toilet', 'sink', 'lamp', 'bathtub',
               'bag', 'otherstructure', 'otherfurniture', 'otherprop')
NYU13_NAMES = ('bed', 'books', 'ceiling', 'chair', 'floor', 'furniture', 'objects', 'picture', 'sofa', 'table',
               'tv', 'wall', 'window')
# NYU-40 id (1..40) -> 13-class id (1..13), as classMapping13.labels13
NYU40_TO_13 = np.array([12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5, 7, 3, 2, 6, 11, 7, 7,
                        7, 7, 7, 7, 6, 7, 7, 7, 7, 7, 7, 6, 7], dtype=np.int64)
# labelled-set camera (full 640x480 frame)
NYU_INTRINSICS = np.array([[518.8579, 0, 325.5824], [0, 519.4696, 253.7362], [0, 0, 1]], dtype=np.float32)


def _loadmat(path: Path) -> Dict[str, object]:
    from scipy.io import loadmat
    try:
        return loadmat(path)
    except Exception as e:  # truncated or not a MATLAB file: scipy raises ValueError, OSError, ...
        raise DataError(f'{path}: cannot read the .mat file ({e.__class__.__name__}: {e})') from e


def load_class_mapping_40(path: Union[str, os.PathLike]) -> np.ndarray:
    """``classMapping40.mat`` -> lookup table raw id (0..894) -> NYU-40 id (0..40)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: classMapping40.mat not found')
    m = _loadmat(path)
    if 'mapClass' not in m:
        raise DataError(f'{path}: no mapClass variable; is this classMapping40.mat?')
    return np.concatenate([[0], np.asarray(m['mapClass']).ravel().astype(np.int64)])


def load_splits(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """``splits.mat`` -> {'train': 0-based indices (795), 'test': (654)}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: splits.mat not found')
    m = _loadmat(path)
    if 'trainNdxs' not in m or 'testNdxs' not in m:
        raise DataError(f'{path}: no trainNdxs / testNdxs variables; is this splits.mat?')
    return {'train': np.asarray(m['trainNdxs']).ravel().astype(np.int64) - 1,
            'test': np.asarray(m['testNdxs']).ravel().astype(np.int64) - 1}


def to_train_ids(raw: np.ndarray, lut40: np.ndarray, classes: int, where: str = '') -> np.ndarray:
    """Raw NYU ids -> train ids 0..C-1 with 255 = unlabelled; ids outside the mapping are an error."""
    if raw.size and (raw.min() < 0 or raw.max() >= len(lut40)):
        bad = np.unique(raw[(raw < 0) | (raw >= len(lut40))])
        raise LabelRangeError(f'{where}: label ids {", ".join(str(int(v)) for v in bad[:8])} outside the '
                              f'894-class mapping (0..{len(lut40) - 1})')
    l40 = lut40[raw]
    if classes == 40:
        ids = l40
    elif classes == 13:
        ids = np.where(l40 > 0, NYU40_TO_13[np.clip(l40 - 1, 0, 39)], 0)
    else:
        raise DataError(f'classes must be 40 or 13, got {classes}')
    return np.where(ids > 0, ids - 1, IGNORE_INDEX).astype(np.int64)


class NYUv2Labeled:
    """The 1449 labelled frames: rgb, depth (metres; ``depth='filled'`` or ``'raw'``), semantic train ids,
    instances (masks/labels/boxes per (class, instance) pair)."""

    def __init__(self, mat_path: Union[str, os.PathLike], *, class_mapping_40: Union[str, os.PathLike],
                 split: str = 'all', splits_mat: Optional[Union[str, os.PathLike]] = None, classes: int = 40,
                 depth: str = 'raw'):
        import h5py
        self.path = Path(mat_path)
        if not self.path.is_file():
            raise DataError(f'{self.path}: file not found')
        try:
            with h5py.File(self.path, 'r') as f:
                missing = [k for k in ('images', 'depths', 'rawDepths', 'labels') if k not in f]
                if missing:
                    raise DataError(f'{self.path}: not nyu_depth_v2_labeled.mat (missing {missing})')
                n, c, w, h = f['images'].shape
        except OSError as e:
            raise DataError(f'{self.path}: not a MATLAB v7.3 / HDF5 file ({e})') from e
        if c != 3:
            raise DataError(f'{self.path}: images have shape {(n, c, w, h)}, expected (N, 3, W, H)')
        if depth not in ('raw', 'filled'):
            raise DataError(f"depth must be 'raw' or 'filled', got {depth!r}")
        self.depth_key = 'rawDepths' if depth == 'raw' else 'depths'
        self.lut40 = load_class_mapping_40(class_mapping_40)
        self.classes = classes
        self.class_names = NYU40_NAMES if classes == 40 else NYU13_NAMES
        if split == 'all':
            self.indices = np.arange(n)
        else:
            if splits_mat is None:
                raise DataError(f"split={split!r} needs splits_mat (splits.mat)")
            splits = load_splits(splits_mat)
            if split not in splits:
                raise DataError(f"split must be 'train', 'test' or 'all', got {split!r}")
            self.indices = splits[split]
            if len(self.indices) == 0:
                raise DataError(f'{splits_mat}: split {split!r} is empty')
            if self.indices.max() >= n:
                raise DataError(f'{splits_mat}: split index {int(self.indices.max()) + 1} > {n} frames '
                                      f'in {self.path}')
        self._file = None

    def __len__(self) -> int:
        return len(self.indices)

    def _h5(self):
        if self._file is None:  # opened lazily, once per DataLoader worker
            import h5py
            self._file = h5py.File(self.path, 'r')
        return self._file

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_file'] = None
        return state

    def __getitem__(self, i: int) -> Dict[str, object]:
        k = int(self.indices[i])
        try:
            f = self._h5()
            rgb = np.ascontiguousarray(f['images'][k].transpose(0, 2, 1))            # (3, H, W)
            depth = np.ascontiguousarray(f[self.depth_key][k].T).astype(np.float32)  # (H, W) metres
            raw = np.ascontiguousarray(f['labels'][k].T).astype(np.int64)
        except (OSError, KeyError, ValueError) as e:  # a truncated or damaged HDF5 file
            raise DataError(f'{self.path}: frame {k + 1}: cannot read ({e.__class__.__name__}: {e})') from e
        depth[~np.isfinite(depth) | (depth < 0)] = 0
        semantic = to_train_ids(raw, self.lut40, self.classes, f'{self.path}[{k}]')
        sample = {'rgb': rgb, 'depth': depth[None], 'semantic': semantic, 'intrinsics': NYU_INTRINSICS.copy(),
                  'source': f'{self.path}#{k + 1}'}
        if 'instances' in f:
            inst = np.ascontiguousarray(f['instances'][k].T).astype(np.int64)
            sample.update(instances_from_pairs(semantic, inst))
        return sample


def instances_from_pairs(semantic: np.ndarray, instance: np.ndarray) -> Dict[str, np.ndarray]:
    """Masks, class ids and xyxy boxes for every (class, instance > 0) pair in a frame."""
    pairs = np.unique(np.stack([semantic[instance > 0], instance[instance > 0]], 1), axis=0) \
        if (instance > 0).any() else np.zeros((0, 2), np.int64)
    pairs = pairs[pairs[:, 0] != IGNORE_INDEX]
    masks = np.stack([(semantic == c) & (instance == j) for c, j in pairs]) if len(pairs) else \
        np.zeros((0, *semantic.shape), bool)
    boxes = np.zeros((len(pairs), 4), np.float32)
    for n, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        boxes[n] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return {'instance_masks': masks, 'instance_labels': pairs[:, 0].astype(np.int64), 'instance_boxes': boxes}


class NYUSyncFrames(RGBDFrames):
    """Raw/sync NYU frames in BTS layout (``.../rgb_00000.jpg`` + ``.../sync_depth_00000.png``, uint16 mm)
    under ``root`` (searched recursively), for pre-training."""

    def __init__(self, root: Union[str, os.PathLike], depth_scale: float = 1000.0, skip_bad: bool = False):
        self.root = Path(root)
        skip = self._skipper(skip_bad)
        if not self.root.is_dir():
            raise DataError(f'{self.root}: folder not found')
        self.depth_scale = depth_scale
        pat = re.compile(r'sync_depth_(\d+)\.png$')
        frames: List = []
        for depth in sorted(self.root.rglob('sync_depth_*.png')):
            m = pat.search(depth.name)
            if not m:
                continue
            candidates = [depth.parent / f'rgb_{m.group(1)}.jpg', depth.parent.parent / 'rgb' / f'rgb_{m.group(1)}.jpg']
            rgb = next((c for c in candidates if present(c)), None)  # a broken link is named when read
            if rgb is None:
                message = f'{depth}: no matching rgb_{m.group(1)}.jpg next to it or in ../rgb/'
                if skip is None:
                    raise DataError(message)
                skip(message)
                continue
            frames.append((rgb, depth))
        if not frames:
            raise DataError(f'{self.root}: no sync_depth_*.png frames found')
        paired = {rgb for rgb, _ in frames}
        for folder in sorted({rgb.parent for rgb in paired}):
            for orphan in (p for p in sorted(folder.glob('rgb_*.jpg')) if p not in paired):
                message = f'{orphan}: no depth partner (sync_depth_{orphan.stem[4:]}.png)'
                if skip is None:
                    raise DataError(message)
                skip(message)
        self.frames = frames
        self.intrinsics = NYU_INTRINSICS
