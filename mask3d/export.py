"""Saving backbones as Hub folders (``model.safetensors`` + timm ``config.json`` + model card).

The folder names timm's stock ViT (``vit_base_patch16_224`` + ``dynamic_img_size``) as its architecture, so plain
timm loads it from the Hub without mask3d installed, ``features_only`` included. What mask3d knows about the weights
(their provenance: sha256, init, data, steps, training config, objective, stated licence, code version) goes under
the ``mask3d`` key of ``config.json``, which timm ignores, and the card (huggingface_hub ``ModelCard``) is rendered
from that record alone: it claims nothing the record does not hold, so random weights get a card that says so.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from timm.models import save_for_hf

from .errors import InvalidWeightsFileError, Mask3DError
from .finite import check_finite_tensors
from .licensing import license_conflict
from .loading import EXPORT_METADATA_KEY, SAFE_WEIGHTS_NAME, read_export_config
from .manifest import sha256_file
from .models.mask3d_vit import stock_timm_architecture
from .version import __version__

__all__ = ['save_pretrained', 'render_model_card', 'card_from_config', 'check_finite_tensors', 'MASK3D_OBJECTIVE']

MASK3D_OBJECTIVE = 'mask3d'
"""``config.json['mask3d']['objective']`` of weights trained by ``mask3d pretrain`` (masked RGB-D, depth targets)."""

NOT_RECORDED = 'not recorded'
_RESULT_PREFIXES = ('probe/', 'finetune/', 'eval/')   # measured results; everything else in ``metrics`` is telemetry
_WRITTEN = (SAFE_WEIGHTS_NAME, 'config.json', 'README.md')

_CITATION = """@inproceedings{hou2023mask3d,
  title     = {Mask3D: Pre-training 2D Vision Transformers by Learning Masked 3D Priors},
  author    = {Hou, Ji and Dai, Xiaoliang and He, Zijian and Dai, Angela and Nie{\\ss}ner, Matthias},
  booktitle = {CVPR},
  year      = {2023},
  pages     = {13510--13519},
}"""


PROBE_TASKS = ('depth', 'normals', 'semseg', 'correspondence')


def probe_results(probe: Dict[str, Any], source: str) -> Tuple[Dict[str, Any], str]:
    """(``probe/TASK/METRIC`` -> value, the command that measured them) from a ``probe.json`` written by
    ``mask3d probe`` (nested per task; an older flat ``{'metrics': {...}}`` is read too). Timing is not a result."""
    def scalar(v):
        return isinstance(v, (int, float, str)) and not isinstance(v, bool)

    def rounded(v):
        return round(v, 6) if isinstance(v, float) else v
    found = {f'probe/{k}': rounded(v) for k, v in (probe.get('metrics') or {}).items() if scalar(v)}
    for task in PROBE_TASKS:
        for name, value in (probe.get(task) or {}).items() if isinstance(probe.get(task), dict) else ():
            if scalar(value):
                found[f'probe/{task}/{name}'] = rounded(value)
            elif isinstance(value, dict):  # depth.scale_aligned.*, depth.scale_shift_aligned.*
                found.update({f'probe/{task}/{name}/{k}': rounded(v) for k, v in value.items() if scalar(v)})
    backbone = probe.get('backbone') if isinstance(probe.get('backbone'), dict) else {}
    label = backbone.get('label') or 'RUN_DIR'
    return found, f'`mask3d probe --backbone {label} ...` ({source}, which holds its full config)'


def _table(rows: Mapping[str, Any]) -> str:
    return '\n'.join(['| metric | value |', '| --- | --- |', *(f'| {k} | {v} |' for k, v in rows.items())])


def _yaml_block(config: Optional[Union[str, Dict[str, Any]]]) -> str:
    if isinstance(config, dict):
        import yaml
        config = yaml.safe_dump(config, sort_keys=False)
    return f"```yaml\n{(config or NOT_RECORDED).rstrip()}\n```"


def _about(record: Dict[str, Any], description: str) -> str:
    """What the weights are, claiming 3D priors only for the Mask3D objective."""
    if record.get('objective') == MASK3D_OBJECTIVE:
        default = ('A ViT backbone pre-trained with the Mask3D objective (masked RGB-D pre-training that reconstructs '
                   'depth from RGB, Hou et al., CVPR 2023), which aims to give 2D features 3D priors; whether it '
                   'did for these weights is only what the results below measure.')
    else:
        default = ('A timm ViT backbone saved with mask3d. How these weights were trained is not recorded, so this '
                   'card makes no claim about them (no 3D priors, no results) beyond their architecture.')
    return f'{description}\n\n{default}' if description else default


def _results(record: Dict[str, Any]) -> str:
    found = {k: v for k, v in (record.get('metrics') or {}).items() if k.startswith(_RESULT_PREFIXES)}
    if not found:
        return 'None measured.'
    command = record.get('results_command') or '`mask3d probe --backbone RUN_DIR ...` (RUN_DIR/probe.json)'
    return f'{_table(found)}\n\nMeasured by {command}.'


def _training(record: Dict[str, Any]) -> str:
    telemetry = {k: v for k, v in (record.get('metrics') or {}).items() if not k.startswith(_RESULT_PREFIXES)}
    lines = [f"- objective: {'Mask3D masked RGB-D pre-training' if record.get('objective') == MASK3D_OBJECTIVE else record.get('objective') or NOT_RECORDED}",
             f"- init: {record.get('init') or NOT_RECORDED}",
             f"- data: {record.get('training_data') or NOT_RECORDED}",
             f"- steps: {record.get('steps') if record.get('steps') is not None else NOT_RECORDED}",
             f"- code version: {'mask3d ' + record['mask3d_version'] if record.get('mask3d_version') else NOT_RECORDED}"]
    run = f'\n\nLast logged training step (telemetry, not a result):\n\n{_table(telemetry)}' if telemetry else ''
    return '\n'.join(lines) + run + f"\n\nTraining config:\n\n{_yaml_block(record.get('training_config'))}"


def _limitations(record: Dict[str, Any]) -> str:
    items = ['- A backbone without a task head: features only (`num_classes=0`); fine-tune or probe it for a task.',
             '- RGB input only, ImageNet mean/std, H and W multiples of 16 (default 240x320); depth is used only '
             'during pre-training.']
    if record.get('objective') != MASK3D_OBJECTIVE:
        items.append('- Provenance not recorded: treat these as weights of unknown origin and quality.')
    if 'synthetic' in (record.get('data_sources') or []):
        items.append('- Trained on built-in synthetic rooms, not real images: not expected to transfer to real data.')
    if not any(k.startswith(_RESULT_PREFIXES) for k in record.get('metrics') or {}):
        items.append('- No downstream result was measured, so nothing here shows that the features are useful.')
    if record.get('steps') is not None and record['steps'] < 10_000:
        items.append(f"- Short run ({record['steps']} steps); the paper pre-trains for hundreds of epochs.")
    return '\n'.join(items)


def _licence(license: Optional[str], record: Dict[str, Any]) -> str:
    if not license:
        return ('Not stated by whoever saved these weights: ask them before any use beyond personal experiments. '
                '(The mask3d code is Apache-2.0; that says nothing about weights.)')
    inherited = record.get('init_license')
    why = f" (inherited from the init weights' {inherited})" if inherited and inherited.lower() == license.lower() \
        and record.get('init') not in (None, 'scratch') else ''
    return f'{license}{why}'


def _card_tags(record: Dict[str, Any]) -> List[str]:
    """Hub tags; 'rgb-d' and 'self-supervised' describe how weights were trained, so only Mask3D-objective ones."""
    tags = ['mask3d', 'timm', 'vision-transformer']
    return tags + ['rgb-d', 'self-supervised'] if record.get('objective') == MASK3D_OBJECTIVE else tags


def build_model_card(*, model_name: str, record: Dict[str, Any], repo_id: Optional[str] = None,
                     description: str = '', license: Optional[str] = None, base_model: Optional[str] = None):
    """A ``huggingface_hub.ModelCard`` (``library_name: timm``) rendered from a provenance ``record``."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(license=license or None, library_name='timm', pipeline_tag='image-feature-extraction',
                         base_model=base_model or None,
                         tags=_card_tags(record))
    load = f"'hf-hub:{repo_id}'" if repo_id else "'local-dir:PATH/TO/THIS/FOLDER'"
    sections = [
        f'# {model_name}', _about(record, description),
        '## Usage', f"""```python
import timm  # timm alone: config.json names timm's stock ViT with dynamic_img_size

model = timm.create_model({load}, pretrained=True).eval()
features = model.forward_features(images)  # images: [B, 3, H, W] (240x320 default), H and W multiples of 16
pyramid = timm.create_model({load}, pretrained=True, features_only=True, out_indices=(2, 5, 8, 11))
```

With mask3d installed, `mask3d.create_model({load}, pretrained=True)` is the same call with errors that say what to
do and a sha256 check of the weights file.""",
        '## Results', _results(record),
        '## Training', _training(record),
        '## Limitations', _limitations(record),
        '## Licence', _licence(license, record),
        '## Citation', f'```bibtex\n{_CITATION}\n```',
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n" + '\n\n'.join(sections) + '\n')


def render_model_card(*, model_name: str, repo_id: Optional[str] = None, description: str = '',
                      license: Optional[str] = None, training_data: str = '',
                      training_config: Optional[Union[str, Dict[str, Any]]] = None,
                      metrics: Optional[Dict[str, Any]] = None, base_model: Optional[str] = None,
                      objective: Optional[str] = None, **record: Any) -> str:
    """The card's text from keyword fields (``hub/make_cards.py`` renders the manifest's releases with it)."""
    record.update(training_data=training_data or None, training_config=training_config, metrics=metrics or {},
                  objective=objective)
    return str(build_model_card(model_name=model_name, record=record, repo_id=repo_id, description=description,
                                license=license, base_model=base_model))


def card_from_config(config: Dict[str, Any], repo_id: Optional[str] = None):
    """The card of an export, from its config.json alone (``mask3d push`` re-renders it with the real Hub id)."""
    record = config.get(EXPORT_METADATA_KEY, {})
    pretrained_cfg = config.get('pretrained_cfg', {})
    return build_model_card(model_name=record.get('name') or record.get('architecture') or config['architecture'],
                            record=record, repo_id=repo_id, description=record.get('description') or '',
                            license=record.get('license'), base_model=record.get('base_model'))


def _check_ours(directory: Path) -> None:
    """Never overwrite files mask3d did not write: an existing config.json must carry mask3d's record."""
    config = directory / 'config.json'
    others = [n for n in _WRITTEN if (directory / n).exists()]
    if not others:
        return
    try:
        ours = EXPORT_METADATA_KEY in json.loads(config.read_text())
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise Mask3DError(f"{directory}: holds {', '.join(others)} not written by mask3d (no \"mask3d\" record in "
                          f"config.json); refusing to overwrite them: save into a new or empty folder")


def _stated_license(license: Optional[str], record: Dict[str, Any]) -> Optional[str]:
    """The licence the user states; weights from a non-permissive init carry its terms; conflicts are errors."""
    inherited = record.get('license')
    if license:
        conflict = license_conflict(license, record.get('init_license'))
        if conflict:
            raise Mask3DError(f"license={license!r}: {conflict} (init: {record.get('init')}); state "
                              f"{record.get('init_license')} or leave the licence unstated")
        return license
    return inherited or None


def save_pretrained(
        model: torch.nn.Module,
        directory: Union[str, os.PathLike],
        *,
        model_card: Optional[Dict[str, Any]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        license: Optional[str] = None,
) -> Path:
    """Write ``model.safetensors``, a timm-schema ``config.json`` with the weights' provenance, and a model card.

    ``timm.create_model('local-dir:DIR', pretrained=True)`` (and ``hf-hub:`` once pushed) rebuilds the same model
    with identical outputs, with or without mask3d installed. ``license`` is the licence you state for the weights
    (default: not stated). ``metadata`` is the provenance recorded under ``config.json['mask3d']`` (``init``,
    ``training_data``, ``data_sources``, ``steps``, ``training_config``, ``objective``, ``metrics``); anything not
    given is recorded as unknown, and the card claims nothing about it. ``model_card`` fills card fields
    (``description``, ``base_model``, ``training_data``, ``training_config``, ``metrics``). Non-finite weights and
    folders holding files mask3d did not write are refused before anything is written.
    """
    directory = Path(directory)
    check_finite_tensors(model.state_dict(), f'save_pretrained({directory})')
    _check_ours(directory)
    card = dict(model_card or {})
    record = {'name': card.pop('model_name', None), 'objective': None, 'init': NOT_RECORDED,
              'training_data': card.get('training_data') or NOT_RECORDED, 'data_sources': [], 'steps': None,
              'training_config': card.get('training_config'), 'metrics': card.get('metrics') or {},
              'base_model': card.get('base_model'), 'description': card.get('description') or '',
              **(metadata or {})}
    record['license'] = _stated_license(license or card.get('license'), record)
    record['mask3d_version'] = __version__
    save_for_hf(model, directory, safe_serialization=True)
    config_path = directory / 'config.json'
    config = json.loads(config_path.read_text())
    record.setdefault('architecture', config['architecture'])
    record['name'] = record['name'] or config['architecture']
    # plain timm builds the stock ViT; dynamic_img_size resamples the 14x14 position grid to 240x320 inputs
    config['architecture'] = stock_timm_architecture(config['architecture'])
    config['model_args'] = {**config.get('model_args', {}), 'dynamic_img_size': True}
    pretrained_cfg = config['pretrained_cfg']
    pretrained_cfg.pop('tag', None)  # the weights are the user's own now, not the official tag
    pretrained_cfg.pop('license', None)
    if record['license']:
        pretrained_cfg['license'] = record['license']
    pretrained_cfg['description'] = record['description'] or _about(record, '').split('. ')[0] + '.'
    config[EXPORT_METADATA_KEY] = {**record, 'sha256': sha256_file(directory / SAFE_WEIGHTS_NAME)}
    config_path.write_text(json.dumps(config, indent=2))
    card_from_config(config).save(directory / 'README.md')
    return directory


def restate_license(directory: Union[str, os.PathLike], license: str) -> None:
    """Set the licence of an export mask3d wrote (``mask3d export --license``): config.json and card together."""
    directory = Path(directory)
    config = read_export_config(directory / 'config.json')
    record = config.get(EXPORT_METADATA_KEY)
    if not isinstance(record, dict):
        raise InvalidWeightsFileError(f"{directory / 'config.json'}: no mask3d record; export it with mask3d")
    record['license'] = _stated_license(license, record)
    config['pretrained_cfg']['license'] = record['license']
    (directory / 'config.json').write_text(json.dumps(config, indent=2))
    card_from_config(config).save(directory / 'README.md')
