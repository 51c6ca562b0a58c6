"""ScanNet v2 RGB-D frames for pre-training: scenes exported from ``.sens`` files or ``scannet_frames_25k``.

Both layouts hold one folder per scene with ``color/*.jpg`` and ``depth/*.png`` (uint16 millimetres, 0 = no
measurement); colour (1296x968 in exported scenes) is resized to the 640x480 depth grid. The depth intrinsics
come from ``intrinsic/intrinsic_depth.txt`` (exported) or ``intrinsics_depth.txt`` (25k), as 4x4 matrices.
``split`` is an official list such as ``scannetv2_train.txt`` (one scene name per line).
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from .folder import RGBDFolderError, RGBDFrames

DEPTH_SCALE = 1000.0  # ScanNet depth PNGs are millimetres


def read_scene_list(path: Union[str, os.PathLike]) -> List[str]:
    path = Path(path)
    if not path.is_file():
        raise RGBDFolderError(f'{path}: split file not found')
    scenes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not scenes:
        raise RGBDFolderError(f'{path}: empty split')
    return scenes


class ScanNetFrames(RGBDFrames):
    resize_rgb_to_depth = True

    def __init__(self, root: Union[str, os.PathLike], split: Optional[Union[str, os.PathLike]] = None,
                 every: int = 1):
        self.root = Path(root)
        self.depth_scale = DEPTH_SCALE
        if not self.root.is_dir():
            raise RGBDFolderError(f'{self.root}: ScanNet root not found')
        if every < 1:
            raise RGBDFolderError(f'every must be >= 1, got {every}')
        scenes = read_scene_list(split) if split else sorted(p.name for p in self.root.iterdir()
                                                             if (p / 'color').is_dir())
        self.frames, self._scene_of = [], []
        self._intrinsics: Dict[str, Optional[np.ndarray]] = {}
        for scene in scenes:
            folder = self.root / scene
            if not (folder / 'color').is_dir() or not (folder / 'depth').is_dir():
                raise RGBDFolderError(f'{folder}: scene from the split has no color/ and depth/ folders')
            colors = {p.stem: p for p in (folder / 'color').glob('*.jpg')}
            depths = {p.stem: p for p in (folder / 'depth').glob('*.png')}
            keys = sorted(set(colors) & set(depths), key=lambda k: int(k) if k.isdigit() else k)
            for key in keys[::every]:
                self.frames.append((colors[key], depths[key]))
                self._scene_of.append(scene)
            self._intrinsics[scene] = self._read_intrinsics(folder)
        if not self.frames:
            raise RGBDFolderError(f'{self.root}: no frames with both color/*.jpg and depth/*.png')

    @staticmethod
    def _read_intrinsics(folder: Path) -> Optional[np.ndarray]:
        for candidate in (folder / 'intrinsic' / 'intrinsic_depth.txt', folder / 'intrinsics_depth.txt'):
            if candidate.is_file():
                m = np.loadtxt(candidate, dtype=np.float32)
                if m.shape != (4, 4):
                    raise RGBDFolderError(f'{candidate}: expected a 4x4 matrix, got {m.shape}')
                return m[:3, :3].copy()
        return None

    def frame_intrinsics(self, index: int) -> Optional[np.ndarray]:
        return self._intrinsics[self._scene_of[index]]
