"""The simple feature pyramid of ViTDet (Li et al. 2022) / BEiT: stride-16 ViT maps -> strides 4, 8, 16, 32.

One pyramid for every head: the dense heads (UPerNet, DPT) feed it four maps from four blocks (the BEiT/MAE
segmentation protocol), Mask R-CNN feeds it the last block's map four times (ViTDet). Scale by scale: two 2x
deconvolutions, one 2x deconvolution, a 1x1 conv, a 1x1 conv + 2x max-pool, each to ``out_channels``.
"""
from typing import List, Sequence

import torch
from torch import nn


def _up(ch: int, out: int, factor: int) -> nn.Module:
    layers: List[nn.Module] = []
    c = ch
    for i in range(factor.bit_length() - 1):  # factor 4 -> two 2x deconvolutions
        layers += [nn.ConvTranspose2d(c, out, kernel_size=2, stride=2)]
        if i < factor.bit_length() - 2:
            layers += [nn.GroupNorm(1, out), nn.GELU()]
        c = out
    return nn.Sequential(*layers)


class SimpleFeaturePyramid(nn.Module):
    """Four stride-16 maps (one per output scale) -> strides 4, 8, 16, 32 with ``out_channels`` each."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f'SimpleFeaturePyramid needs 4 feature levels, got {len(in_channels)}')
        self.out_channels = out_channels
        self.scales = nn.ModuleList([
            _up(in_channels[0], out_channels, 4),
            _up(in_channels[1], out_channels, 2),
            nn.Conv2d(in_channels[2], out_channels, 1),
            nn.Sequential(nn.Conv2d(in_channels[3], out_channels, 1), nn.MaxPool2d(2, ceil_mode=True)),
        ])

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        return [scale(f) for scale, f in zip(self.scales, feats)]
