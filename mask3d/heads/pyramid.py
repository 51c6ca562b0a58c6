"""ViTDet's simple feature pyramid (Li et al. 2022): stride-16 ViT maps -> strides 4, 8, 16, 32.

One pyramid for every head: the dense heads (UPerNet, DPT) feed it four maps from four blocks (the BEiT/MAE
segmentation protocol), Mask R-CNN feeds it the last block's map four times (ViTDet). Each scale is resampled
(deconv x4, deconv x2, identity, max-pool), then projected by a 1x1 and a 3x3 conv, each with a norm.
"""
from typing import List, Sequence

import torch
from torch import nn


def _conv_norm(in_ch: int, out_ch: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.GroupNorm(1, out_ch))


def _rescale(ch: int, stride: int) -> nn.Sequential:
    """stride-16 map -> ``stride``; returns the module (its output channels are in ``out_channels``)."""
    if stride == 4:
        layers = [nn.ConvTranspose2d(ch, ch // 2, 2, stride=2), nn.GroupNorm(1, ch // 2), nn.GELU(),
                  nn.ConvTranspose2d(ch // 2, ch // 4, 2, stride=2)]
    elif stride == 8:
        layers = [nn.ConvTranspose2d(ch, ch // 2, 2, stride=2)]
    elif stride == 16:
        layers = []
    else:  # 32
        layers = [nn.MaxPool2d(2, ceil_mode=True)]
    return nn.Sequential(*layers)


class SimpleFeaturePyramid(nn.Module):
    """Four stride-16 maps (one per output scale) -> four maps at strides 4, 8, 16, 32 with ``out_channels`` each."""
    strides = (4, 8, 16, 32)

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f'SimpleFeaturePyramid needs 4 feature levels, got {len(in_channels)}')
        self.out_channels = out_channels
        rescaled = [ch // {4: 4, 8: 2, 16: 1, 32: 1}[s] for ch, s in zip(in_channels, self.strides)]
        self.rescale = nn.ModuleList([_rescale(ch, s) for ch, s in zip(in_channels, self.strides)])
        self.project = nn.ModuleList([nn.Sequential(_conv_norm(ch, out_channels, 1),
                                                    _conv_norm(out_channels, out_channels, 3)) for ch in rescaled])

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        return [project(rescale(f)) for rescale, project, f in zip(self.rescale, self.project, feats)]
