"""Joint RGB-D transforms: one crop/flip applied to RGB, depth, labels, instances and intrinsics alike.

RGB is resized bilinearly (antialiased); depth with nearest neighbour, so valid and invalid (0) pixels are
never blended into fake depths. All randomness comes from the ``numpy.random.Generator`` passed in, which the
dataset derives from (seed, epoch, index): a sample is the same however many workers or ranks load it.

Deferred colour (``device_decode.py``): a sample may carry ``rgb_size`` (h, w) instead of ``rgb``; the same
parameters are drawn, everything but colour is transformed, and ``rgb_params`` records what
:meth:`JointTransform.colour` later applies to the colour decoded on a device.
"""
import math
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ...constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


def random_resized_crop_params(rng: np.random.Generator, height: int, width: int, scale: Tuple[float, float],
                               ratio: Tuple[float, float]) -> Tuple[int, int, int, int]:
    """(top, left, h, w) like torchvision's RandomResizedCrop, drawn from ``rng``; ratio is w/h."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    # fallback: central crop with the ratio clamped into range
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


class JointTransform:
    """Random resized crop + horizontal flip to ``image_size`` applied alike to RGB, depth (nearest), semantic
    labels (nearest), instance masks (nearest) and boxes, and intrinsics; optional colour jitter on RGB only;
    then RGB normalisation. ``scale=(1, 1)`` and ``hflip=0`` give a deterministic resize (evaluation)."""

    def __init__(self, image_size: Sequence[int], *, scale: Tuple[float, float] = (0.5, 1.0),
                 hflip: float = 0.5, color_jitter: float = 0.0, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
                 std: Sequence[float] = IMAGENET_DEFAULT_STD):
        self.size = (int(image_size[0]), int(image_size[1]))
        self.scale, self.hflip, self.color_jitter = tuple(scale), hflip, color_jitter
        aspect = self.size[1] / self.size[0]
        self.ratio = (aspect * 3 / 4, aspect * 4 / 3)
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> torch.Tensor:
        """This sample's random choices, in the order they are drawn: float64 [8] = (top, left, crop h, crop w,
        flip, brightness, contrast, saturation); no jitter: factors 1."""
        top, left, ch, cw = random_resized_crop_params(rng, height, width, self.scale, self.ratio)
        flip = rng.random() < self.hflip
        j = self.color_jitter
        jitter = [float(rng.uniform(1 - j, 1 + j)) for _ in range(3)] if j > 0 else [1.0, 1.0, 1.0]
        return torch.tensor([top, left, ch, cw, float(flip), *jitter], dtype=torch.float64)

    def colour(self, rgb: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """uint8 [3, H, W] (any device) -> uint8 [3, h, w]: crop, resize (bilinear, antialiased), flip, jitter."""
        top, left, ch, cw, flip = (int(v) for v in params[:5].tolist())
        rgb = TF.resized_crop(rgb, top, left, ch, cw, list(self.size), interpolation=InterpolationMode.BILINEAR,
                              antialias=True)
        if flip:
            rgb = rgb.flip(-1)
        if self.color_jitter > 0:
            brightness, contrast, saturation = params[5:8].tolist()
            rgb = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(rgb, brightness), contrast), saturation)
        return rgb

    def normalise(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8 [..., 3, h, w] -> float, normalised with the model's mean and std (on ``rgb``'s device)."""
        return (rgb.float() / 255.0 - self.mean.to(rgb.device)) / self.std.to(rgb.device)

    def __call__(self, sample: Dict[str, object], rng: np.random.Generator) -> Dict[str, torch.Tensor]:
        rgb = torch.as_tensor(np.asarray(sample['rgb'])) if 'rgb' in sample else None
        h, w = rgb.shape[-2:] if rgb is not None else sample['rgb_size']  # rgb_size: colour decoded later
        params = self.draw(rng, h, w)
        top, left, ch, cw, flip = (int(v) for v in params[:5].tolist())
        size = list(self.size)

        def nearest(x: torch.Tensor) -> torch.Tensor:
            x = TF.resized_crop(x, top, left, ch, cw, size, interpolation=InterpolationMode.NEAREST)
            return x.flip(-1) if flip else x

        out = {'rgb': self.normalise(self.colour(rgb, params))} if rgb is not None else {'rgb_params': params}
        if 'depth' in sample:
            out['depth'] = nearest(torch.as_tensor(np.asarray(sample['depth'], dtype=np.float32)))
        if 'semantic' in sample:
            out['semantic'] = nearest(torch.as_tensor(np.asarray(sample['semantic'], dtype=np.int64))[None])[0]
        if 'instance_masks' in sample:
            masks = torch.as_tensor(np.asarray(sample['instance_masks'])).to(torch.uint8)
            masks = nearest(masks) if len(masks) else masks.new_zeros((0, *self.size))
            keep = masks.flatten(1).bool().any(1) if len(masks) else torch.zeros(0, dtype=torch.bool)
            masks = masks[keep].bool()
            out['instance_masks'] = masks
            out['instance_labels'] = torch.as_tensor(np.asarray(sample['instance_labels']))[keep]
            boxes = torch.zeros(len(masks), 4)
            for n, m in enumerate(masks):  # recomputed from the transformed masks (exact, not approximated)
                ys, xs = torch.nonzero(m, as_tuple=True)
                boxes[n] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            out['instance_boxes'] = boxes
        K = torch.as_tensor(np.asarray(sample.get('intrinsics', np.eye(3)), dtype=np.float32)).clone()
        sx, sy = self.size[1] / cw, self.size[0] / ch
        K[0, 0] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] - left) * sx
        K[1, 2] = (K[1, 2] - top) * sy
        if flip:
            K[0, 2] = self.size[1] - K[0, 2]
        out['intrinsics'] = K
        return out

