"""Joint RGB-D transforms for pre-training: one crop/flip applied to RGB, depth and intrinsics alike.

RGB is resized bilinearly (antialiased); depth with nearest neighbour, so valid and invalid (0) pixels are
never blended into fake depths. All randomness comes from the ``numpy.random.Generator`` passed in, which the
dataset derives from (seed, epoch, index): a sample is the same however many workers or ranks load it.
"""
import math
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF


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


class PretrainTransform:
    """Random resized crop + horizontal flip to ``image_size``, then RGB normalisation."""

    def __init__(self, image_size: Sequence[int], *, scale: Tuple[float, float] = (0.5, 1.0),
                 hflip: float = 0.5, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225)):
        self.size = (int(image_size[0]), int(image_size[1]))
        self.scale, self.hflip = tuple(scale), hflip
        aspect = self.size[1] / self.size[0]
        self.ratio = (aspect * 3 / 4, aspect * 4 / 3)
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, sample: Dict[str, object], rng: np.random.Generator) -> Dict[str, torch.Tensor]:
        rgb = torch.as_tensor(np.asarray(sample['rgb']))
        depth = torch.as_tensor(np.asarray(sample['depth'], dtype=np.float32))
        _, h, w = rgb.shape
        top, left, ch, cw = random_resized_crop_params(rng, h, w, self.scale, self.ratio)
        rgb = TF.resized_crop(rgb, top, left, ch, cw, list(self.size), interpolation=InterpolationMode.BILINEAR,
                              antialias=True)
        depth = TF.resized_crop(depth, top, left, ch, cw, list(self.size), interpolation=InterpolationMode.NEAREST)
        K = torch.as_tensor(np.asarray(sample.get('intrinsics', np.eye(3)), dtype=np.float32)).clone()
        sx, sy = self.size[1] / cw, self.size[0] / ch
        K[0, 0] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] - left) * sx
        K[1, 2] = (K[1, 2] - top) * sy
        if rng.random() < self.hflip:
            rgb, depth = rgb.flip(-1), depth.flip(-1)
            K[0, 2] = self.size[1] - K[0, 2]
        rgb = (rgb.float() / 255.0 - self.mean) / self.std
        return {'rgb': rgb, 'depth': depth, 'intrinsics': K}
