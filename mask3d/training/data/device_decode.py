"""Colour decoded on the training device: JPEG bytes travel through the DataLoader, nvjpeg decodes them.

Why: one CPU core turns about 103 ScanNet-like frames/s (640x480 JPEG + 16-bit PNG) into pre-training samples,
and JPEG decoding + colour resizing is the largest part (docs/datasets.md, "Throughput"); an H100 step wants
~2200 img/s. With ``data.decode_device`` set, the workers still read the files, decode and crop depth, draw the
crop/flip from ``default_rng([seed, epoch, index])`` and the mask noise, but hand the colour over as its encoded
bytes; :func:`decode_colour` then decodes the batch with ``torchvision.io.decode_jpeg(..., device=device)``
(batched nvjpeg on CUDA) and applies the same crop, antialiased bilinear resize, flip and normalisation
(:meth:`JointTransform.colour`) on the device. The batch equals the worker path's: depth, intrinsics and masks
exactly; RGB exactly on CPU for colour at the depth size, within one 8-bit level where colour is first resized
to the depth grid (PIL's resize vs torch's; tests/test_device_decode.py).

Sources that can defer: readers of colour/depth file pairs with JPEG colour and plain depth files (folder,
ScanNet, NYU raw), mixtures of them, and shards written from them. Others (PNG colour, SUN RGB-D's bit-rotated
depth, synthetic frames) raise :class:`DeferredColourError`, naming the source.

Limit: a colour file's header is checked in the worker (JPEG, size), its body only when the device decodes it,
so ``data.skip_bad`` cannot skip a JPEG that is corrupt past its header: the batch's decode raises, naming it.
"""
import copy
import io
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ...errors import BadDataFileError, ConfigError, DataError
from .folder import RGBDFrames, decode_depth, read_file_bytes
from .mixture import MixtureFrames
from .transforms import JointTransform

JPEG_EXTS = ('.jpg', '.jpeg')
DECODE_DEVICES = ('worker', 'cpu', 'cuda')
_DEFERRED_KEYS = ('rgb_encoded', 'rgb_source')  # per-sample values that stay lists in a batch


class DeferredColourError(DataError):
    """A source cannot hand its colour over encoded (not JPEG, or depth in a format the worker cannot decode)."""


def jpeg_size(data: bytes, where: str) -> Tuple[int, int]:
    """(h, w) from a JPEG header, without decoding the image."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            kind, (w, h) = im.format, im.size
    except Exception as e:
        raise BadDataFileError(f'{where}: cannot read image ({e})') from e
    if kind != 'JPEG':
        raise DeferredColourError(f'{where}: colour is {kind}, not JPEG; only JPEG colour can be decoded on the '
                                  f'device (set data.decode_device=worker)')
    return h, w


def defer_rgbd(rgb: bytes, depth: bytes, *, depth_suffix: str, depth_scale: float, resize_rgb_to_depth: bool,
               rgb_where: str, depth_where: str, depth_invalid: Optional[int] = None) -> Dict[str, object]:
    """A registered JPEG colour / depth pair -> sample with decoded depth and the colour still encoded; the checks
    of ``folder.decode_rgbd`` (sizes agree, some valid depth), the colour size read from its header."""
    depth_m = decode_depth(depth, depth_suffix, depth_scale, depth_where, depth_invalid)
    size = jpeg_size(rgb, rgb_where)
    if not resize_rgb_to_depth and size != depth_m.shape:
        raise BadDataFileError(f'{depth_where}: depth is {depth_m.shape}, colour {rgb_where} is {size}; they must be '
                              f'registered at the same size')
    if not (depth_m > 0).any():
        raise BadDataFileError(f'{depth_where}: no valid depth pixel (all zero or invalid)')
    return {'rgb_encoded': torch.from_numpy(np.frombuffer(rgb, np.uint8).copy()), 'rgb_size': depth_m.shape,
            'rgb_source': rgb_where, 'depth': depth_m[None]}


class DeferredColourFrames:
    """A colour/depth file-pair reader (folder, ScanNet, NYU raw) whose frames keep their JPEG colour encoded."""

    def __init__(self, frames: RGBDFrames, name: str):
        self.frames, self.name = frames, name
        not_jpeg = next((c for c, _ in frames.frames if c.suffix.lower() not in JPEG_EXTS), None)
        if not_jpeg is not None:
            raise DeferredColourError(f'{name}: colour file {not_jpeg} is not JPEG; only JPEG colour can be decoded '
                                      f'on the device (set data.decode_device=worker)')

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Dict[str, object]:
        rgb_path, depth_path = self.frames.frames[index]
        sample = defer_rgbd(read_file_bytes(rgb_path, 'colour'), read_file_bytes(depth_path, 'depth'),
                            depth_suffix=depth_path.suffix,
                            depth_scale=self.frames.depth_scale, resize_rgb_to_depth=self.frames.resize_rgb_to_depth,
                            rgb_where=str(rgb_path), depth_where=str(depth_path),
                            depth_invalid=self.frames.depth_invalid)
        K = self.frames.frame_intrinsics(index)
        sample['intrinsics'] = np.eye(3, dtype=np.float32) if K is None else K.copy()
        return sample


def defer_colour(frames, name: str):
    """``frames`` with its colour left encoded, or :class:`DeferredColourError` naming ``name`` if it cannot."""
    if isinstance(frames, MixtureFrames):
        mixed = copy.copy(frames)  # same weights and draws; each part defers (or the first that cannot says so)
        mixed.sources = [defer_colour(s, f'{name}, mixture part {i}') for i, s in enumerate(frames.sources)]
        return mixed
    if isinstance(frames, RGBDFrames) and frames.plain_depth_files:
        return DeferredColourFrames(frames, name)
    raise DeferredColourError(f'{name} ({type(frames).__name__}) cannot defer colour decoding: only readers of '
                              f'JPEG colour files with plain depth files (folder, scannet, nyu-raw), mixtures of '
                              f'them and shards of them can; set data.decode_device=worker')


def decode_shard_frame_deferred(raw: Dict[str, Any], where: str) -> Dict[str, object]:
    """A shard sample -> pre-training frame with the colour still encoded (``ShardStream(decode=...)``)."""
    from .shards import read_record
    meta, (rgb_ext, rgb), (depth_ext, depth) = read_record(raw, where)
    if rgb_ext not in JPEG_EXTS:
        raise DeferredColourError(f'{where}.rgb{rgb_ext}: the shards store {rgb_ext[1:].upper()} colour; only JPEG '
                                  f'colour can be decoded on the device (set data.decode_device=worker)')
    sample = defer_rgbd(rgb, depth, depth_suffix=depth_ext, depth_scale=meta['depth_scale'] or 1.0,
                        resize_rgb_to_depth=meta['resize_rgb_to_depth'], rgb_where=f'{where}.rgb{rgb_ext}',
                        depth_where=f'{where}.depth{depth_ext}', depth_invalid=meta.get('depth_invalid'))
    sample['intrinsics'] = np.asarray(meta['intrinsics'], np.float32)
    return sample


def check_shards_deferrable(urls: Sequence[str], name: str) -> None:
    """Fail at start-up, not in a worker, when local shards hold non-JPEG colour (remote ones are checked as read)."""
    import os
    import tarfile
    if not urls or not os.path.isfile(urls[0]):
        return
    with tarfile.open(urls[0]) as tf:
        for member in tf:
            field = member.name.split('.', 1)[-1]
            if field.startswith('rgb.'):
                if '.' + field[len('rgb.'):] not in JPEG_EXTS:
                    raise DeferredColourError(f'{name}: {urls[0]} stores colour as {member.name}; only JPEG colour '
                                              f'can be decoded on the device (set data.decode_device=worker)')
                return


def collate_deferred(samples: List[Dict[str, Any]]) -> Dict[str, Any]:
    """default_collate, except that the encoded colour (variable length) and its source names stay lists."""
    rest = [{k: v for k, v in s.items() if k not in _DEFERRED_KEYS} for s in samples]
    batch = default_collate(rest)
    for key in _DEFERRED_KEYS:
        batch[key] = [s[key] for s in samples]
    return batch


def _decode_jpeg(data, device: torch.device):
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders for TorchCodec's (not a dependency)
        warnings.filterwarnings('ignore', message='The image decoding and encoding capabilities of TorchVision',
                                category=DeprecationWarning)
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def _decode_all(encoded: List[torch.Tensor], sources: List[str], device: torch.device) -> List[torch.Tensor]:
    try:
        return _decode_jpeg(encoded, device)
    except RuntimeError:
        for data, where in zip(encoded, sources):  # find the file to name
            try:
                _decode_jpeg(data, device)
            except RuntimeError as e:
                raise BadDataFileError(f'{where}: cannot decode JPEG on {device} ({e})') from e
        raise


def decode_colour(batch: Dict[str, Any], transform: JointTransform, device) -> Dict[str, Any]:
    """A batch of :func:`collate_deferred` -> the worker path's batch: ``rgb`` [B, 3, h, w] normalised, on
    ``device``; the other tensors are left where they are. ``transform``: the one the workers used."""
    device = torch.device(device)
    encoded, sources = batch.pop('rgb_encoded'), batch.pop('rgb_source')
    params, sizes = batch.pop('rgb_params'), batch.pop('rgb_size').tolist()
    crops = []
    for image, p, size in zip(_decode_all(encoded, sources, device), params, sizes):
        if list(image.shape[-2:]) != size:  # e.g. ScanNet's 1296x968 colour onto the 640x480 depth grid
            image = TF.resize(image, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        crops.append(transform.colour(image, p))
    batch['rgb'] = transform.normalise(torch.stack(crops))
    return batch


class ColourDecoding:
    """Where one run decodes its colour JPEGs (``data.decode_device``): ``worker`` changes nothing; ``cuda``
    decodes on the training GPU, ``cpu`` in the main process (for tests and checks). The pre-training engine asks
    it for the frames, the shard decoder, the collate function and the batches."""

    def __init__(self, setting: str, train_device: torch.device, transform: JointTransform):
        if setting not in DECODE_DEVICES:
            raise ConfigError(f'data.decode_device must be one of {DECODE_DEVICES}, got {setting!r}')
        train_device = torch.device(train_device)
        if setting == 'cuda' and train_device.type != 'cuda':
            raise ConfigError(f'data.decode_device=cuda needs training on a GPU, but it runs on {train_device}; '
                              f'use data.decode_device=worker (or cpu)')
        self.device = None if setting == 'worker' else train_device if setting == 'cuda' else torch.device('cpu')
        self.transform = transform

    @property
    def deferred(self) -> bool:
        return self.device is not None

    def frames(self, frames, source: str):
        return defer_colour(frames, f'data.source={source}') if self.deferred else frames

    def shard_decoder(self, urls: Sequence[str]):
        """The ``decode`` of :class:`ShardStream`; checks local shards hold JPEG colour before any worker starts."""
        from .shards import decode_frame
        if not self.deferred:
            return decode_frame
        check_shards_deferrable(urls, 'data.source=shards')
        return decode_shard_frame_deferred

    @property
    def collate_fn(self):
        return collate_deferred if self.deferred else None

    def batches(self, loader):
        """The loader's batches, with ``rgb`` decoded on the device when deferred."""
        return (decode_colour(b, self.transform, self.device) for b in loader) if self.deferred else loader
