"""DPT-style dense head (Ranftl et al. 2021) for depth: reassemble 4 ViT levels at strides 4-32, fuse
coarse-to-fine with residual conv units, and predict positive depth (metres) at the input resolution."""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .pyramid import SimpleFeaturePyramid


class _ResidualConvUnit(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class _Fusion(nn.Module):
    def __init__(self, ch: int, with_skip: bool = True):
        super().__init__()
        self.skip = _ResidualConvUnit(ch) if with_skip else None  # the coarsest level has no skip input
        self.out = _ResidualConvUnit(ch)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor = None) -> torch.Tensor:
        if skip is not None:
            x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=False) + self.skip(skip)
        return self.proj(self.out(x))


class DPTDepthHead(nn.Module):
    def __init__(self, in_channels: Sequence[int], channels: int = 256, max_depth: float = 10.0):
        super().__init__()
        self.pyramid = SimpleFeaturePyramid(in_channels, channels)
        self.fusions = nn.ModuleList([_Fusion(channels, with_skip=i < 3) for i in range(4)])
        self.out = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(channels // 2, 1, 1))
        self.max_depth = max_depth

    def forward(self, feats: Sequence[torch.Tensor], size) -> torch.Tensor:
        levels = self.pyramid(feats)
        x = self.fusions[3](levels[3])
        for i in (2, 1, 0):
            x = self.fusions[i](x, levels[i])
        x = F.interpolate(self.out(x), size=size, mode='bilinear', align_corners=False)
        return self.max_depth * torch.sigmoid(x)  # (0, max_depth) metres
