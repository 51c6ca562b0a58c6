"""Cityscapes: images, fine labels (labelIds -> 19 trainIds, 255 = ignore) and disparity -> metric depth.

Files come through torchvision's ``Cityscapes`` reader (same layout: ``leftImg8bit/``, ``gtFine/``), plus
``disparity/`` and ``camera/`` from the same stems. Depth: ``p = uint16 PNG``; ``p == 0`` invalid;
``disparity = (p - 1) / 256`` px; ``depth = baseline * fx / disparity`` with the image's camera json; capped.
"""
import json
import os
from pathlib import Path
from typing import Dict, Union

import numpy as np
from PIL import Image

from ...errors import DataError
from .folder import read_label, read_rgb

# labelId -> trainId (cityscapesscripts/helpers/labels.py); every other id is 255
LABEL_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                  26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES19_NAMES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
                      'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
                      'motorcycle', 'bicycle')
MAX_DEPTH_M = 80.0
_LUT = np.full(256, 255, dtype=np.int64)
for _k, _v in LABEL_TO_TRAIN.items():
    _LUT[_k] = _v


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    return _LUT[np.clip(label_ids.astype(np.int64), 0, 255)]


def disparity_to_depth(png: np.ndarray, camera: Dict, where: str = '', max_depth: float = MAX_DEPTH_M) -> np.ndarray:
    try:
        baseline, fx = float(camera['extrinsic']['baseline']), float(camera['intrinsic']['fx'])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f'{where}: camera json lacks extrinsic.baseline / intrinsic.fx ({e})') from e
    p = png.astype(np.float64)
    disparity = (p - 1.0) / 256.0
    valid = (png > 0) & (disparity > 0)
    depth = np.zeros(png.shape, np.float32)
    depth[valid] = (baseline * fx / disparity[valid]).astype(np.float32)
    depth[depth > max_depth] = 0
    return depth


def read_camera(path: Path) -> Dict:
    """``*_camera.json`` -> dict with numeric ``intrinsic`` fx, fy, u0, v0 (checked, so a broken file is one line)."""
    try:
        camera = json.loads(path.read_text())
        for key in ('fx', 'fy', 'u0', 'v0'):
            camera['intrinsic'][key] = float(camera['intrinsic'][key])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f'{path}: not a Cityscapes camera json with intrinsic fx, fy, u0, v0 '
                              f'({e.__class__.__name__}: {e})') from e
    return camera


class CityscapesRGBD:
    """Cityscapes ``split`` (train/val/test) as samples: rgb, depth (metres), semantic (trainIds), intrinsics."""

    def __init__(self, root: Union[str, os.PathLike], split: str = 'train', with_depth: bool = True):
        from torchvision.datasets import Cityscapes
        self.root = Path(root)
        try:
            self._tv = Cityscapes(str(self.root), split=split, mode='fine', target_type='semantic')
        except RuntimeError as e:
            raise DataError(f'{self.root}: not a Cityscapes tree with leftImg8bit/{split} and gtFine/{split} '
                                  f'({e})') from e
        if len(self._tv) == 0:
            raise DataError(f'{self.root}: split {split!r} is empty')
        self.split, self.with_depth = split, with_depth
        self.class_names = CITYSCAPES19_NAMES

    def __len__(self) -> int:
        return len(self._tv)

    def _sibling(self, image_path: str, kind: str, suffix: str) -> Path:
        p = Path(image_path)
        stem = p.name.replace('_leftImg8bit.png', '')
        return self.root / kind / self.split / p.parent.name / f'{stem}_{suffix}'

    def __getitem__(self, i: int):
        image_path = self._tv.images[i]
        rgb = read_rgb(image_path)
        label_path = self._tv.targets[i][0]
        label = read_label(label_path)
        if label.shape != rgb.shape[1:]:
            raise DataError(f'{label_path}: labels are {label.shape}, image is {rgb.shape[1:]}')
        sample = {'rgb': rgb, 'semantic': label_ids_to_train_ids(label), 'source': image_path}
        camera_path = self._sibling(image_path, 'camera', 'camera.json')
        if camera_path.is_file():
            camera = read_camera(camera_path)
            sample['intrinsics'] = np.array([[camera['intrinsic']['fx'], 0, camera['intrinsic']['u0']],
                                             [0, camera['intrinsic']['fy'], camera['intrinsic']['v0']], [0, 0, 1]],
                                            np.float32)
        if self.with_depth:
            disp_path = self._sibling(image_path, 'disparity', 'disparity.png')
            if not disp_path.is_file() or not camera_path.is_file():
                raise DataError(f'{image_path}: depth needs {disp_path} and {camera_path}')
            try:
                with Image.open(disp_path) as im:
                    png = np.array(im)
            except Exception as e:
                raise DataError(f'{disp_path}: cannot read disparity ({e.__class__.__name__}: {e})') from e
            if png.shape != rgb.shape[1:]:
                raise DataError(f'{disp_path}: disparity is {png.shape}, image is {rgb.shape[1:]}')
            sample['depth'] = disparity_to_depth(png, camera, str(disp_path))[None]
        return sample
