"""Saving backbones as Hub folders (``model.safetensors`` + timm ``config.json`` + model card)."""
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from timm.models import save_for_hf

from .weights import SAFE_WEIGHTS_NAME

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
) -> str:
    """A model card whose usage snippet imports mask3d before timm (timm alone does not know the name)."""
    load = f"'hf-hub:{repo_id}'" if repo_id else "'local-dir:PATH/TO/THIS/FOLDER'"
    if isinstance(training_config, dict):
        import yaml
        training_config = yaml.safe_dump(training_config, sort_keys=False)
    metrics_md = '\n'.join(f'| {k} | {v} |' for k, v in (metrics or {}).items()) or '| (none recorded) | |'
    return f"""---
license: {license}
library_name: mask3d
pipeline_tag: image-feature-extraction
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
import mask3d  # registers the mask3d_* architectures in timm
import timm

model = timm.create_model({load}, pretrained=True)
model.eval()
features = model.forward_features(images)  # images: [B, 3, H, W], H and W multiples of 16
```

`mask3d.create_model(...)` is the same call with clearer errors. The weights also load into
`timm.create_model('vit_*_patch16_224', num_classes=0)` of the same size without conversion.

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
) -> Path:
    """Write ``model.safetensors``, a timm-schema ``config.json`` and a ``README.md`` model card.

    ``mask3d.create_model('local-dir:DIR', pretrained=True)`` rebuilds the same model with identical outputs.
    """
    directory = Path(directory)
    save_for_hf(model, directory, safe_serialization=True)
    config_path = directory / 'config.json'
    config = json.loads(config_path.read_text())
    # the weights are the user's own now: drop the official tag the architecture's default cfg carried
    config['pretrained_cfg'].pop('tag', None)
    config_path.write_text(json.dumps(config, indent=2))
    arch = config['architecture']
    card = dict(model_name=arch, license=model.pretrained_cfg.get('license') or 'apache-2.0')
    card.update(model_card or {})
    (directory / 'README.md').write_text(render_model_card(**card))
    assert (directory / SAFE_WEIGHTS_NAME).is_file()
    return directory
