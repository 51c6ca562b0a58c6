"""The ViT inside a model, found in one place.

A timm ``features_only`` model (``FeatureGetterNet``) holds the ViT as ``.model``; weight loading, the heads'
layer-decay groups and the probe's recipe all need the ViT itself and, for parameter names, its prefix.
"""
from typing import Tuple

from torch import nn


def vit_inside(model: nn.Module) -> Tuple[nn.Module, str]:
    """(the ViT, its name prefix inside ``model``): ``model`` itself when it is the ViT (it has ``patch_embed``),
    else the ``.model`` a features_only wrapper holds; a model that is neither is returned as is."""
    if hasattr(model, 'patch_embed'):
        return model, ''
    inner = getattr(model, 'model', None)
    if isinstance(inner, nn.Module) and hasattr(inner, 'patch_embed'):
        return inner, 'model.'
    return model, ''
