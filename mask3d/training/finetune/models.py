"""The fine-tuning model for a config: where the backbone comes from, and which ``mask3d.heads`` head wraps it."""
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import yaml
from torch import nn

from ...errors import ConfigError
from ...heads import build_backbone, build_depth_model, build_mask_rcnn, build_segmentation_model


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
    return build_mask_rcnn(net, m.num_classes, min_size=min(h, w), max_size=max(h, w), mean=(0.0,) * 3,
                           std=(1.0,) * 3, channels=m.head_channels, **m.detector_args), recipe
