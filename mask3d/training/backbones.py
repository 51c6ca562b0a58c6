"""Where the backbone of fine-tuning and of the probes comes from: ``model.backbone`` (a model name, an exported
folder, a ``mask3d pretrain`` run or a weights file) as what ``create_model`` needs."""
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import yaml

from ..constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from ..errors import ConfigError


def input_normalisation(vit) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """(mean, std) the backbone was trained with (its timm ``pretrained_cfg``), ImageNet's when it names none."""
    cfg = getattr(vit, 'pretrained_cfg', None) or {}
    return tuple(cfg.get('mean', IMAGENET_DEFAULT_MEAN)), tuple(cfg.get('std', IMAGENET_DEFAULT_STD))


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
