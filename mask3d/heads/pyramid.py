"""Turn same-stride ViT feature maps into a multi-scale pyramid (strides 4, 8, 16, 32), ViTDet/BEiT style."""
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


class ViTPyramid(nn.Module):
    """Four stride-16 maps -> strides 4, 8, 16, 32 (deconv x4, deconv x2, identity, max-pool), ``out_ch`` each."""

    def __init__(self, in_channels: Sequence[int], out_ch: int):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f'ViTPyramid needs 4 feature levels, got {len(in_channels)}')
        self.scales = nn.ModuleList([
            _up(in_channels[0], out_ch, 4),
            _up(in_channels[1], out_ch, 2),
            nn.Conv2d(in_channels[2], out_ch, 1),
            nn.Sequential(nn.Conv2d(in_channels[3], out_ch, 1), nn.MaxPool2d(2, ceil_mode=True)),
        ])

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        return [scale(f) for scale, f in zip(self.scales, feats)]
