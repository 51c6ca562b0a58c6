"""Linear semantic-segmentation head: BN + 1x1 conv on the last feature map, upsampled to the input."""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LinearSegHead(nn.Module):
    def __init__(self, in_channels: Sequence[int], num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels[-1])
        self.classifier = nn.Conv2d(in_channels[-1], num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor], size) -> torch.Tensor:
        logits = self.classifier(self.norm(feats[-1]))
        return F.interpolate(logits, size=size, mode='bilinear', align_corners=False)
