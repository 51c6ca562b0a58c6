"""SUN RGB-D: per-sample folders with ``image/*.jpg``, ``depth/*.png`` (or ``depth_bfx``) and ``intrinsics.txt``.

Depth PNGs use the toolbox's bit-rotated encoding: millimetres = 16-bit right rotation by 3 of the stored value,
``((p >> 3) | (p << 13)) & 0xFFFF``; metres = mm / 1000, capped at 8 m (SUNRGBDtoolbox read3dPoints.m).
Labels: the 37 classes (0 = void, 1..37 = the first 37 NYU-40 classes) -> train ids 0..36, 255 = void.
"""
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from ...errors import LabelRangeError
from ...errors import DataError
from .folder import RGBDFrames, present, read_label, read_matrix
from .nyu import NYU40_NAMES

SUNRGBD37_NAMES = NYU40_NAMES[:37]
MAX_DEPTH_M = 8.0


def decode_sunrgbd_depth(png: np.ndarray) -> np.ndarray:
    """Bit-rotated uint16 PNG values -> float32 metres (0 = invalid, capped at 8 m)."""
    if png.dtype != np.uint16:
        raise DataError(f'SUN RGB-D depth must be uint16, got {png.dtype}')
    mm = np.bitwise_or(np.right_shift(png, 3), np.left_shift(png, 13))
    return np.minimum(mm.astype(np.float32) / 1000.0, MAX_DEPTH_M)


def encode_sunrgbd_depth(depth_mm: np.ndarray) -> np.ndarray:
    """Inverse of the decoding (left rotation by 3), for writing fixtures and converting own data."""
    d = depth_mm.astype(np.uint16)
    return np.bitwise_or(np.left_shift(d, 3), np.right_shift(d, 13))


def sunrgbd_labels_to_train_ids(labels: np.ndarray, where: str = '') -> np.ndarray:
    if labels.size and (labels.max() > 37 or labels.min() < 0):
        bad = np.unique(labels[(labels > 37) | (labels < 0)])
        raise LabelRangeError(f'{where}: label ids {", ".join(str(int(v)) for v in bad[:8])} outside the 37 classes '
                              f'(0 = void, 1..37)')
    return np.where(labels > 0, labels.astype(np.int64) - 1, 255)


class SUNRGBDFrames(RGBDFrames):
    """All samples under ``root`` (searched recursively for folders holding ``image/`` and ``depth/``).
    Optional per-sample labels: ``label/*.png`` holding the 37-class ids (e.g. exported from SUNRGBD2Dseg.mat)."""
    plain_depth_files = False  # bit-rotated depth PNGs

    def __init__(self, root: Union[str, os.PathLike], depth_dir: str = 'depth', skip_bad: bool = False):
        self.root = Path(root)
        skip = self._skipper(skip_bad)
        if not self.root.is_dir():
            raise DataError(f'{self.root}: folder not found')
        self.depth_dir, self.depth_scale = depth_dir, 1000.0
        self.frames, self._dirs = [], []
        for image_dir in sorted(self.root.rglob('image')):
            sample = image_dir.parent
            images = sorted(image_dir.glob('*.jpg')) + sorted(image_dir.glob('*.png'))
            depths = sorted((sample / depth_dir).glob('*.png'))
            if not images and not depths:
                continue
            if not images or not depths:
                missing = f'{depth_dir}/*.png' if images else 'image/*.jpg|png'
                message = f'{sample}: no {missing} for this sample (a colour/depth pair needs both)'
            elif len(images) != 1 or len(depths) != 1:
                message = f'{sample}: expected one image and one {depth_dir} PNG, found {len(images)} and {len(depths)}'
            else:
                message = None
            if message is not None:
                if skip is None:
                    raise DataError(message)
                skip(message)
                continue
            self.frames.append((images[0], depths[0]))
            self._dirs.append(sample)
        if not self.frames:
            raise DataError(f'{self.root}: no SUN RGB-D samples (folders with image/ and {depth_dir}/)')

    def frame_intrinsics(self, index: int) -> Optional[np.ndarray]:
        path = self._dirs[index] / 'intrinsics.txt'
        if not present(path):  # a broken link is named by the read, not passed over
            return None
        return read_matrix(path, ((3, 3),), 'intrinsics').astype(np.float32)

    def __getitem__(self, index: int):
        rgb_path, depth_path = self.frames[index]
        from .folder import read_rgb
        rgb = read_rgb(rgb_path)
        try:
            with Image.open(depth_path) as im:
                png = np.array(im)
        except Exception as e:
            raise DataError(f'{depth_path}: cannot read depth ({e})') from e
        if png.dtype == np.int32:
            png = png.astype(np.uint16)
        try:
            depth = decode_sunrgbd_depth(png)
        except DataError as e:
            raise DataError(f'{depth_path}: {e}') from e
        if depth.shape != rgb.shape[1:]:
            raise DataError(f'{depth_path}: depth is {depth.shape}, image is {rgb.shape[1:]}')
        K = self.frame_intrinsics(index)
        sample = {'rgb': rgb, 'depth': depth[None], 'intrinsics': np.eye(3, dtype=np.float32) if K is None else K,
                  'source': f'{rgb_path}|{depth_path}'}
        labels = sorted((self._dirs[index] / 'label').glob('*.png'))
        if len(labels) > 1:
            raise DataError(f'{self._dirs[index] / "label"}: {len(labels)} label PNGs for one sample; keep one')
        if labels:
            label = read_label(labels[0])
            if label.shape != depth.shape:
                raise DataError(f'{labels[0]}: labels are {label.shape}, depth is {depth.shape}')
            sample['semantic'] = sunrgbd_labels_to_train_ids(label, str(labels[0]))
        return sample
