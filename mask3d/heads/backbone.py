"""The ``features_only`` backbone the heads wrap, and timm's layer-decay rules for a model that holds one.

Heads never change the backbone (dinov2 style): a task model keeps it whole as ``.backbone`` and exposes timm's
``group_matcher`` / ``no_weight_decay`` with the backbone's own rules under its prefix, so
``timm.optim.create_optimizer_v2(model, layer_decay=...)`` gives each ViT block its decayed lr and the head the
full lr (the BEiT/MAE fine-tuning recipe).
"""
import re
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..factory import create_model
from ..unwrap import vit_inside


def default_out_indices(depth: int) -> Sequence[int]:
    """Four evenly spaced blocks ending with the last: (2, 5, 8, 11) for 12 blocks, (5, 11, 17, 23) for 24."""
    if depth < 4:
        raise ConfigError(f'dense heads need a backbone with at least 4 blocks, got {depth}')
    return (depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1)


def build_backbone(name: str, out_indices: Optional[Sequence[int]] = None, pretrained: bool = False,
                   checkpoint_path: Optional[str] = None, **kwargs) -> nn.Module:
    """``features_only`` backbone from any ``mask3d.create_model`` name, Hub id, ``local-dir:`` or checkpoint."""
    if out_indices is None:
        with torch.device('meta'):  # only the block count is needed: no memory, no initialisation
            out_indices = default_out_indices(len(create_model(name, pretrained=False, **kwargs).blocks))
    indices = tuple(out_indices)
    return create_model(name, pretrained=pretrained, checkpoint_path=checkpoint_path, features_only=True,
                        out_indices=indices, **kwargs)


class BackboneLayerDecay:
    """timm's layer-decay contract for a model holding a ViT at ``self._vit_path``: the ViT's groups (stem,
    blocks, final norm) under its prefix; everything else (the head) falls into the last group, lr scale 1."""
    _vit_path = 'backbone'

    def _vit(self):
        module = self
        for part in self._vit_path.split('.'):
            module = getattr(module, part)
        vit, inner = vit_inside(module)
        return vit, f'{self._vit_path}.{inner}'

    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        vit, prefix = self._vit()

        def scoped(pattern: str) -> str:
            return '^' + re.escape(prefix) + '(?:' + pattern.lstrip('^') + ')'
        out = {}
        for group, rule in vit.group_matcher(coarse=coarse).items():
            out[group] = scoped(rule) if isinstance(rule, str) else [(scoped(p), suffix) for p, suffix in rule]
        return out

    def no_weight_decay(self) -> set:
        vit, prefix = self._vit()
        return {prefix + n for n in vit.no_weight_decay()}
