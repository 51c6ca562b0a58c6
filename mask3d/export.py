"""Saving backbones as Hub folders (``model.safetensors`` + timm ``config.json`` + model card).

The folder names timm's stock ViT (``vit_base_patch16_224`` + ``dynamic_img_size``) as its architecture, so plain
timm loads it from the Hub without mask3d installed, ``features_only`` included. What mask3d knows about the
weights (sha256 of the file, init, data, steps) goes under the ``mask3d`` key of ``config.json``, which timm ignores.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from timm.models import save_for_hf

from .manifest import sha256_file
from .models.mask3d_vit import stock_timm_architecture
from .loading import EXPORT_METADATA_KEY, SAFE_WEIGHTS_NAME

__all__ = ['save_pretrained', 'render_model_card']

_CITATION = """@inproceedings{hou2023mask3d,
  title     = {Mask3D: Pre-training 2D Vision Transformers by Learning Masked 3D Priors},
  author    = {Hou, Ji and Dai, Xiaoliang and He, Zijian and Dai, Angela and Nie{\\ss}ner, Matthias},
  booktitle = {CVPR},
  year      = {2023},
  pages     = {13510--13519},
}"""


def render_model_card(
        *,
        model_name: str,
        repo_id: Optional[str] = None,
        description: str = '',
        license: str = 'apache-2.0',
        training_data: str = '',
        training_config: Optional[Union[str, Dict[str, Any]]] = None,
        metrics: Optional[Dict[str, Any]] = None,
        base_model: Optional[str] = None,
) -> str:
    """A Hub model card (``library_name: timm``): plain timm loads the folder, so the snippet needs no mask3d."""
    load = f"'hf-hub:{repo_id}'" if repo_id else "'local-dir:PATH/TO/THIS/FOLDER'"
    base = f'base_model: {base_model}\n' if base_model else ''
    if isinstance(training_config, dict):
        import yaml
        training_config = yaml.safe_dump(training_config, sort_keys=False)
    metrics_md = '\n'.join(f'| {k} | {v} |' for k, v in (metrics or {}).items()) or '| (none recorded) | |'
    return f"""---
license: {license}
library_name: timm
{base}pipeline_tag: image-feature-extraction
tags:
- mask3d
- timm
- vision-transformer
- rgb-d
- self-supervised
---
# {model_name}

{description or 'A Mask3D-pretrained ViT backbone: an ordinary timm VisionTransformer whose weights carry 3D priors.'}

## Usage

```python
import timm  # timm alone: config.json names timm's stock ViT with dynamic_img_size

model = timm.create_model({load}, pretrained=True).eval()
features = model.forward_features(images)  # images: [B, 3, H, W] (240x320 default), H and W multiples of 16
pyramid = timm.create_model({load}, pretrained=True, features_only=True, out_indices=(2, 5, 8, 11))
```

With `pip install mask3d`, `mask3d.create_model({load}, pretrained=True)` is the same call with errors that say
what to do and a sha256 check of the weights file.

## Training data

{training_data or 'See the training config below.'}

## Training config

```yaml
{(training_config or '(not recorded)').rstrip()}
```

## Metrics

| metric | value |
| --- | --- |
{metrics_md}

## Licence

{license}

## Citation

```bibtex
{_CITATION}
```
"""


def save_pretrained(
        model: torch.nn.Module,
        directory: Union[str, os.PathLike],
        *,
        model_card: Optional[Dict[str, Any]] = None,
        metadata: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write ``model.safetensors``, a timm-schema ``config.json`` and a ``README.md`` model card.

    ``timm.create_model('local-dir:DIR', pretrained=True)`` (and ``hf-hub:`` once pushed) rebuilds the same model
    with identical outputs, with or without mask3d installed. ``model_card`` overrides card fields (``license``,
    ``description``, ``base_model``, ...); ``metadata`` is recorded under ``config.json['mask3d']``.
    """
    directory = Path(directory)
    save_for_hf(model, directory, safe_serialization=True)
    config_path = directory / 'config.json'
    config = json.loads(config_path.read_text())
    card = dict(model_name=config['architecture'], license=model.pretrained_cfg.get('license') or 'apache-2.0')
    card.update(model_card or {})
    # plain timm builds the stock ViT; dynamic_img_size resamples the 14x14 position grid to 240x320 inputs
    config['architecture'] = stock_timm_architecture(config['architecture'])
    config['model_args'] = {**config.get('model_args', {}), 'dynamic_img_size': True}
    pretrained_cfg = config['pretrained_cfg']
    pretrained_cfg.pop('tag', None)  # the weights are the user's own now, not the official tag
    pretrained_cfg.update(license=card['license'], description=card.get('description') or
                          pretrained_cfg.get('description'))
    config[EXPORT_METADATA_KEY] = {**(metadata or {}), 'sha256': sha256_file(directory / SAFE_WEIGHTS_NAME)}
    config_path.write_text(json.dumps(config, indent=2))
    (directory / 'README.md').write_text(render_model_card(**card))
    assert (directory / SAFE_WEIGHTS_NAME).is_file()
    return directory
