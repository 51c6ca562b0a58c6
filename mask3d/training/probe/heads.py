"""Light probes trained on frozen multi-block features [B, n_blocks * C, h, w], output at the image size.

- ``LinearProbe`` (semantic segmentation): BatchNorm + 1x1 convolution, upsampled bilinearly; a linear map of
  the features, the standard linear probe.
- ``DenseProbe`` (depth, normals): a small convolutional decoder in the spirit of Probe3D's DPT probe, much
  lighter: each block projected by 1x1 convolution and summed, two 3x3 conv refinements at 2x the patch grid,
  then upsampled to the image. Depth comes out through a sigmoid in (0, max_depth] metres; normals as 3 numbers
  normalised afterwards.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class LinearProbe(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, features: torch.Tensor, size) -> torch.Tensor:
        return F.interpolate(self.proj(self.norm(features)), size=size, mode='bilinear', align_corners=False)


class DenseProbe(nn.Module):
    def __init__(self, n_blocks: int, channels: int, out_channels: int, hidden: int = 128):
        super().__init__()
        self.n_blocks = n_blocks
        self.project = nn.ModuleList(nn.Conv2d(channels, hidden, kernel_size=1) for _ in range(n_blocks))
        self.refine = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=3, padding=1), nn.BatchNorm2d(hidden), nn.GELU(),
            nn.Conv2d(hidden, hidden, kernel_size=3, padding=1), nn.BatchNorm2d(hidden), nn.GELU())
        self.out = nn.Conv2d(hidden, out_channels, kernel_size=3, padding=1)

    def forward(self, features: torch.Tensor, size) -> torch.Tensor:
        blocks = features.chunk(self.n_blocks, dim=1)
        x = sum(proj(b) for proj, b in zip(self.project, blocks))
        x = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
        return F.interpolate(self.out(self.refine(x)), size=size, mode='bilinear', align_corners=False)


class DepthProbe(DenseProbe):
    def __init__(self, n_blocks: int, channels: int, hidden: int = 128, max_depth: float = 10.0,
                 init_depth: float = 3.0):
        super().__init__(n_blocks, channels, 1, hidden)
        self.max_depth = max_depth
        with torch.no_grad():  # start at the typical depth (the training median), not at max_depth / 2
            q = min(max(init_depth / max_depth, 1e-3), 1 - 1e-3)
            self.out.bias.fill_(math.log(q / (1 - q)))

    def forward(self, features: torch.Tensor, size) -> torch.Tensor:
        return torch.sigmoid(super().forward(features, size)) * self.max_depth


def angular_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between normalised predictions and ground-truth normals over valid pixels."""
    cos = (F.normalize(pred, dim=1) * gt).sum(1)[valid]
    return torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6)).mean()
