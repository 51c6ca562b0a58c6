"""Task models: a ``features_only`` mask3d (or timm ViT) backbone plus a head; the backbone is not modified.

The task models expose timm's ``group_matcher`` / ``no_weight_decay`` with the backbone's own rules under its
prefix, so ``timm.optim.create_optimizer_v2(model, layer_decay=...)`` gives each ViT block its decayed lr and
the head the full lr (the BEiT/MAE fine-tuning recipe).
"""
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import yaml
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from ...errors import ConfigError
from ...factory import create_model
from .heads import DPTDepthHead, LinearSegHead, SimpleFeaturePyramid, UPerNetHead


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


def _vit_of(backbone: nn.Module):
    """(the ViT inside a features_only wrapper, its name prefix inside ``backbone``)."""
    return (backbone, '') if hasattr(backbone, 'patch_embed') else (backbone.model, 'model.')


class BackboneLayerDecay:
    """timm's layer-decay contract for a model holding a ViT at ``self._vit_path``: the ViT's groups (stem,
    blocks, final norm) under its prefix; everything else (the head) falls into the last group, lr scale 1."""
    _vit_path = 'backbone'

    def _vit(self):
        module = self
        for part in self._vit_path.split('.'):
            module = getattr(module, part)
        vit, inner = _vit_of(module)
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


def backbone_source(spec: str, pretrained: bool = True, arch: Optional[str] = None
                    ) -> Tuple[str, bool, Optional[str], Dict[str, Any]]:
    """What ``model.backbone`` names, as (create_model name, load published weights?, weights file, model args).

    Accepts a create_model name (mask3d or timm, ``hf-hub:``, ``local-dir:``), an exported folder (config.json +
    model.safetensors), a ``mask3d pretrain`` run directory (its latest checkpoint, with the run's architecture) or
    a weights file (with ``arch``).
    """
    path = Path(spec)
    if path.is_dir():
        if (path / 'config.json').is_file():
            return f'local-dir:{path}', True, None, {}
        last, run_cfg = path / 'checkpoints' / 'last.pt', path / 'config.yaml'
        if last.is_file() and run_cfg.is_file():
            model = (yaml.safe_load(run_cfg.read_text()) or {}).get('model', {})
            if 'name' not in model:
                raise ConfigError(f'{run_cfg}: no model.name; is {path} a mask3d pretrain run directory?')
            return arch or model['name'], False, str(last), dict(model.get('model_args') or {})
        raise ConfigError(f'model.backbone={spec}: a folder, but neither an exported backbone (config.json) nor a '
                          f'mask3d pretrain run directory (config.yaml + checkpoints/last.pt)')
    if path.suffix in ('.safetensors', '.pt', '.pth', '.bin'):
        if not path.is_file():
            raise ConfigError(f'model.backbone={spec}: no such weights file')
        if not arch:
            raise ConfigError(f'model.backbone={spec} is a weights file: set model.arch to its architecture, '
                              f'e.g. mask3d_vit_base_patch16')
        return arch, False, str(path), {}
    if spec.startswith(('local-dir:', 'hf-hub:')):
        return spec, True, None, {}  # these name weights: always loaded
    return spec, pretrained, None, {}


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


class InstanceModel(BackboneLayerDecay, MaskRCNN):
    """torchvision's Mask R-CNN whose backbone is a SimpleFeaturePyramid over the ViT."""
    _vit_path = 'backbone.backbone'


def build_instance_model(backbone: nn.Module, num_classes: int, min_size: int = 240, max_size: int = 320,
                         mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                         channels: int = 256, **detector_args: Any):
    """torchvision Mask R-CNN on a ViTDet simple feature pyramid; ``num_classes`` excludes the background.
    Inputs are [0, 1] images normalised with ``mean``/``std`` inside (pass mean 0, std 1 for normalised ones).
    ``detector_args`` go to torchvision's MaskRCNN (e.g. rpn_post_nms_top_n_train, box_batch_size_per_image)."""
    anchors = AnchorGenerator(sizes=((16,), (32,), (64,), (128,), (256,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    return InstanceModel(SimpleFeaturePyramid(backbone, channels), num_classes=num_classes + 1, min_size=min_size,
                         max_size=max_size, image_mean=list(mean), image_std=list(std), rpn_anchor_generator=anchors,
                         box_roi_pool=MultiScaleRoIAlign(['0', '1', '2', '3'], 7, 2),
                         mask_roi_pool=MultiScaleRoIAlign(['0', '1', '2', '3'], 14, 2), **detector_args)


def build_task_model(cfg, backbone: Optional[Dict[str, Any]] = None) -> Tuple[nn.Module, Dict[str, Any]]:
    """The model for ``cfg.task`` and the backbone recipe it was built from ({name, model_args}).

    With ``backbone`` (a recipe saved in a fine-tuning checkpoint) the architecture is rebuilt without loading any
    backbone weights, ready for the checkpoint's full state dict.
    """
    m = cfg.model
    if backbone is None:
        name, pretrained, weights, run_args = backbone_source(m.backbone, m.pretrained, m.arch)
        args = dict(run_args, **m.model_args)
    else:
        name, pretrained, weights, args = backbone['name'], False, None, dict(backbone['model_args'])
        if name.startswith('local-dir:') and not Path(name[len('local-dir:'):]).is_dir():
            raise ConfigError(f'the backbone folder {name} of this checkpoint is gone; its config.json is needed to '
                              f'rebuild the architecture')
    recipe = {'name': name, 'model_args': args}
    net = build_backbone(name, out_indices=m.out_indices, pretrained=pretrained, checkpoint_path=weights,
                         drop_path_rate=m.drop_path_rate, dynamic_img_size=True, **args)
    if m.freeze_backbone:  # timm's optimizer factory leaves parameters without gradients out
        net.requires_grad_(False)
    if cfg.task == 'semseg':
        return build_segmentation_model(net, m.num_classes, head=m.head, channels=m.head_channels), recipe
    if cfg.task == 'depth':
        return build_depth_model(net, max_depth=m.max_depth, channels=m.head_channels), recipe
    h, w = cfg.data.image_size
    # samples arrive normalised by the backbone's mean/std already, and at the training size
    return build_instance_model(net, m.num_classes, min_size=min(h, w), max_size=max(h, w), mean=(0.0,) * 3,
                                std=(1.0,) * 3, channels=m.head_channels, **m.detector_args), recipe
