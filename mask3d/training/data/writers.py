"""Writers for each official on-disk format, from samples of the common schema.

Used by the tests and benchmarks to make small byte-exact fixtures, and by users converting their own data.
(``.sens`` lives in scannet_sens.write_sens; the RGB-D folder layout in cli.write_synthetic.)
"""
import json
import os
from pathlib import Path
from typing import Dict, Sequence, Union

import numpy as np
from PIL import Image

from .sunrgbd import encode_sunrgbd_depth

PathLike = Union[str, os.PathLike]


def write_nyu_mat(path: PathLike, rgbs: Sequence[np.ndarray], depths: Sequence[np.ndarray],
                  raw_depths: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                  instances: Sequence[np.ndarray]) -> Path:
    """A MATLAB v7.3 file laid out like ``nyu_depth_v2_labeled.mat``: HDF5 with the 512-byte MATLAB header
    userblock, column-major axes (images (N, 3, W, H); depths/labels (N, W, H))."""
    import h5py
    path = Path(path)
    with h5py.File(path, 'w', userblock_size=512) as f:
        f.create_dataset('images', data=np.stack([r.transpose(0, 2, 1) for r in rgbs]).astype(np.uint8))
        f.create_dataset('depths', data=np.stack([d.T for d in depths]).astype(np.float32))
        f.create_dataset('rawDepths', data=np.stack([d.T for d in raw_depths]).astype(np.float32))
        f.create_dataset('labels', data=np.stack([lab.T for lab in labels]).astype(np.uint16))
        f.create_dataset('instances', data=np.stack([i.T for i in instances]).astype(np.uint8))
    header = b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2026 HDF5 schema 1.00 .'
    with open(path, 'r+b') as f:
        f.write(header.ljust(116, b' ') + b'\x00' * 8 + b'\x00\x02' + b'IM')
    return path


def write_sunrgbd_sample(folder: PathLike, rgb: np.ndarray, depth_mm: np.ndarray, K: np.ndarray,
                         labels37: np.ndarray = None) -> Path:
    """One SUN RGB-D sample folder: image/NAME.jpg, depth/NAME.png (bit-rotated), intrinsics.txt, label/."""
    folder = Path(folder)
    name = folder.name
    for sub in ('image', 'depth'):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.transpose(1, 2, 0)).save(folder / 'image' / f'{name}.jpg', quality=95)
    Image.fromarray(encode_sunrgbd_depth(depth_mm)).save(folder / 'depth' / f'{name}.png')
    (folder / 'intrinsics.txt').write_text(' '.join(f'{v:.6f}' for v in np.asarray(K).ravel()) + '\n')
    if labels37 is not None:
        (folder / 'label').mkdir(exist_ok=True)
        Image.fromarray(labels37.astype(np.uint8)).save(folder / 'label' / f'{name}.png')
    return folder


def write_cityscapes_sample(root: PathLike, split: str, city: str, seq: int, frame: int, rgb: np.ndarray,
                            label_ids: np.ndarray, disparity_png: np.ndarray, camera: Dict) -> str:
    """One Cityscapes frame: leftImg8bit, gtFine labelIds (+ instanceIds, color), disparity, camera json."""
    root = Path(root)
    stem = f'{city}_{seq:06d}_{frame:06d}'
    paths = {k: root / k / split / city for k in ('leftImg8bit', 'gtFine', 'disparity', 'camera')}
    for p in paths.values():
        p.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.transpose(1, 2, 0)).save(paths['leftImg8bit'] / f'{stem}_leftImg8bit.png')
    Image.fromarray(label_ids.astype(np.uint8)).save(paths['gtFine'] / f'{stem}_gtFine_labelIds.png')
    Image.fromarray(label_ids.astype(np.uint16)).save(paths['gtFine'] / f'{stem}_gtFine_instanceIds.png')
    Image.fromarray(np.zeros((*label_ids.shape, 3), np.uint8)).save(paths['gtFine'] / f'{stem}_gtFine_color.png')
    (paths['gtFine'] / f'{stem}_gtFine_polygons.json').write_text('{}')
    Image.fromarray(disparity_png.astype(np.uint16)).save(paths['disparity'] / f'{stem}_disparity.png')
    (paths['camera'] / f'{stem}_camera.json').write_text(json.dumps(camera))
    return stem


def write_scannet25k_frame(scene_dir: PathLike, index: int, rgb: np.ndarray, depth_mm: np.ndarray,
                           nyu40: np.ndarray, instance: np.ndarray, K_depth: np.ndarray) -> Path:
    """One ``scannet_frames_25k`` frame: color/%06d.jpg, depth/%06d.png (mm), label/ (NYU-40, 8-bit),
    instance/ (nyu40 * 1000 + k, 16-bit), pose/, intrinsics_depth.txt (4x4) at the scene root."""
    scene_dir = Path(scene_dir)
    for sub in ('color', 'depth', 'label', 'instance', 'pose'):
        (scene_dir / sub).mkdir(parents=True, exist_ok=True)
    name = f'{index:06d}'
    Image.fromarray(rgb.transpose(1, 2, 0)).save(scene_dir / 'color' / f'{name}.jpg', quality=95)
    Image.fromarray(depth_mm.astype(np.uint16)).save(scene_dir / 'depth' / f'{name}.png')
    Image.fromarray(nyu40.astype(np.uint8)).save(scene_dir / 'label' / f'{name}.png')
    Image.fromarray(instance.astype(np.uint16)).save(scene_dir / 'instance' / f'{name}.png')
    np.savetxt(scene_dir / 'pose' / f'{name}.txt', np.eye(4), fmt='%f')
    K4 = np.eye(4)
    K4[:3, :3] = K_depth
    np.savetxt(scene_dir / 'intrinsics_depth.txt', K4, fmt='%f')
    return scene_dir

