"""Dense task models: backbone maps -> head(maps, input size) -> [B, C, H, W] logits or depth."""
import torch
from torch import nn

from .backbone import BackboneLayerDecay
from .dpt import DPTDepthHead
from .linear import LinearSegHead
from .upernet import UPerNetHead


class DenseModel(BackboneLayerDecay, nn.Module):
    """backbone -> list of maps -> head(maps, input size) -> [B, C, H, W] (logits or depth)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x), x.shape[-2:])


def build_segmentation_model(backbone: nn.Module, num_classes: int, head: str = 'upernet',
                             channels: int = 256) -> DenseModel:
    chs = backbone.feature_info.channels()
    if head == 'upernet':
        return DenseModel(backbone, UPerNetHead(chs, num_classes, channels=channels))
    if head == 'linear':
        return DenseModel(backbone, LinearSegHead(chs, num_classes))
    raise ValueError(f"segmentation head must be 'upernet' or 'linear', got {head!r}")


def build_depth_model(backbone: nn.Module, max_depth: float = 10.0, channels: int = 256) -> DenseModel:
    return DenseModel(backbone, DPTDepthHead(backbone.feature_info.channels(), channels=channels, max_depth=max_depth))
