"""The fine-tuning model for a config: the backbone (where it comes from: ``training/backbones.py``) and the
``mask3d.heads`` head that wraps it (the task's: ``tasks/*.py``, ``Task.build_model``)."""
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from torch import nn

from ...errors import ConfigError
from ...heads import build_backbone
from ..backbones import backbone_source
from .tasks import get_task


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
    return get_task(cfg.task).build_model(net, cfg), recipe
