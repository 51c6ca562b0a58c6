"""``mask3d.create_model`` and ``mask3d.list_models``: thin over timm, with errors that say what to do."""
import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import timm
import torch
from timm.models import get_arch_pretrained_cfgs, parse_model_name, split_model_name_tag

from .errors import CheckpointMismatchError, InvalidWeightsFileError, UnknownModelError
from . import loading
from .loading import (SAFE_WEIGHTS_NAME, check_sha256, fetch_verified, load_checkpoint,
                      read_export_config, recorded_sha256, translate_hub_errors)

__all__ = ['create_model', 'list_models']


def list_models(filter: str = '', pretrained: bool = False) -> List[str]:
    """Registered Mask3D backbones (``pretrained=True``: one entry per ``arch.tag``)."""
    return [m for m in timm.list_models(filter or '*', pretrained=pretrained) if m.startswith('mask3d_')]


def _check_hub_id(name: str, model_id: str) -> None:
    """``hf-hub:ORG/NAME[@REVISION]``, or a one-line error naming the id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo_id, at, revision = model_id.partition('@')
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise InvalidWeightsFileError(f"{name!r}: not a valid Hub id ({str(e).splitlines()[0]}); write "
                                      f"'hf-hub:ORG/NAME' or 'hf-hub:ORG/NAME@REVISION'") from e
    if '/' not in repo_id or (at and not revision.strip()) or any(c.isspace() for c in revision):
        raise InvalidWeightsFileError(f"{name!r}: not a valid Hub id; write 'hf-hub:ORG/NAME' or "
                                      f"'hf-hub:ORG/NAME@REVISION' (a branch, tag or 40-hex commit id)")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(f"model name {name!r}: give a registered name (`mask3d models`), "
                                f"'hf-hub:ORG/NAME' or 'local-dir:DIR'")
    try:
        source, model_id = parse_model_name(name)
    except ValueError as e:  # timm: no id after the prefix, an unknown prefix, a bare path
        raise InvalidWeightsFileError(f"{name!r}: {str(e).splitlines()[0]} (forms: a registered name, "
                                      f"'hf-hub:ORG/NAME[@REVISION]', 'local-dir:DIR')") from e
    if source == 'local-dir':
        folder = Path(model_id)
        if not model_id.strip() or not folder.is_dir():
            raise InvalidWeightsFileError(f"{name!r}: no such folder; 'local-dir:DIR' names a folder written by "
                                          f"mask3d.save_pretrained(model, DIR) or `mask3d export RUN --out DIR`")
        if not (folder / 'config.json').is_file():
            raise InvalidWeightsFileError(
                f"local-dir:{folder}: no config.json there; export a model with mask3d.save_pretrained(model, DIR) "
                f"or `mask3d export RUN --out DIR`")
        read_export_config(folder / 'config.json')
        return
    if source == 'hf-hub':
        _check_hub_id(name, model_id)
        return
    arch, tag = split_model_name_tag(model_id)
    if not timm.is_model(arch):
        candidates = list(dict.fromkeys(timm.list_models('mask3d_*') + timm.list_models()))
        close = difflib.get_close_matches(arch, candidates, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "`mask3d models` lists them"
        raise UnknownModelError(f"unknown model '{arch}': {hint} (run `import mask3d` before timm.create_model)")
    if tag:
        tags = [split_model_name_tag(k)[1] for k in get_arch_pretrained_cfgs(arch)]
        if tag not in tags:
            raise UnknownModelError(f"'{arch}' has no pretrained tag '{tag}'; known tags: {', '.join(tags) or 'none'}")


def _verify_source(name: str, overlay: Optional[Dict[str, Any]]) -> str:
    """Fetch ``hf-hub:`` weights and check every recorded sha256 (manifest, config.json) before timm loads them.

    Returns the name timm should load: ``hf-hub:REPO`` becomes ``hf-hub:REPO@COMMIT`` of the snapshot just
    verified, so timm reads that same cached file even if the repo moves on in between.
    """
    filename = (overlay or {}).get('hf_hub_filename')
    if filename and not filename.endswith('.safetensors'):
        raise InvalidWeightsFileError(f"refusing to download '{filename}' for {name}: mask3d loads Hub weights only "
                                      f"from safetensors; ask the repo owner for a {SAFE_WEIGHTS_NAME}")
    source, model_id = parse_model_name(name)
    if source == 'hf-hub':
        repo_id, _, revision = model_id.partition('@')
        snapshot = fetch_verified(repo_id, revision=revision or None).parent.name
        if re.fullmatch(r'[0-9a-f]{40}', snapshot):  # huggingface_hub's cache: snapshots/<commit>/FILE
            return f'hf-hub:{repo_id}@{snapshot}'
    elif source == 'local-dir':
        folder = Path(model_id)
        check_sha256(folder / SAFE_WEIGHTS_NAME, recorded_sha256(folder / 'config.json'), f'{folder}/config.json',
                     str(folder / SAFE_WEIGHTS_NAME))
    return name


def _official_name_of_hub_id(name: str) -> str:
    """``hf-hub:`` naming a repo the release manifest plans loads as that official name (pinned, verified), so
    neither its config.json nor its weights are read from whatever the repo holds now."""
    source, model_id = parse_model_name(name)
    if source != 'hf-hub':
        return name
    repo_id, _, revision = model_id.partition('@')
    entry = loading.manifest_entry(repo_id)
    if entry is None:
        return name
    if revision and revision != entry.revision:
        from .errors import WeightsDownloadError
        raise WeightsDownloadError(f"{name}: official weights `{entry.name}` load only at the commit the release "
                                   f"manifest pins ({entry.revision or 'none yet: not published'}); drop '@{revision}'")
    return entry.name


def _weights_do_not_fit(model_name: str, kwargs: Dict[str, Any], error: Exception) -> str:
    """One line for pretrained weights that do not fit the model asked for: what they hold, what was asked."""
    from .weights_fit import mismatch_message, model_shapes
    source, model_id = parse_model_name(model_name)
    weights, held_name = None, None
    if source == 'local-dir':
        weights, config = Path(model_id) / SAFE_WEIGHTS_NAME, Path(model_id) / 'config.json'
        held_name = json.loads(config.read_text()).get('architecture') if config.is_file() else None
    elif source == 'hf-hub':
        from huggingface_hub import try_to_load_from_cache
        repo_id, _, revision = model_id.partition('@')
        cached = try_to_load_from_cache(repo_id, SAFE_WEIGHTS_NAME, revision=revision or None)
        weights = Path(cached) if isinstance(cached, str) else None
    if weights is None or not weights.is_file():
        first = next(line.strip() for line in str(error).splitlines()[1:] if line.strip())
        return f"{model_name}: the weights do not fit the model asked for ({first})"
    from safetensors import safe_open
    with safe_open(str(weights), framework='pt') as f:
        held = {k: f.get_slice(k).get_shape() for k in f.keys()}
    with torch.device('meta'):
        asked = model_shapes(timm.create_model(model_name, pretrained=False, **kwargs))
    overrides = ', '.join(f'{k}={v}' for k, v in kwargs.items() if k in ('depth', 'embed_dim', 'num_heads',
                                                                          'patch_size', 'mlp_ratio'))
    if overrides:
        asked_name, hint = f'{model_name} with {overrides}', f'drop {overrides} (the weights decide the size)'
    else:
        asked_name, hint = model_name, (f'its config.json does not describe its {SAFE_WEIGHTS_NAME} (files from two '
                                        f'exports?): export the folder again' if source == 'local-dir' else
                                        'build the architecture the weights hold')
    return mismatch_message(model_name, held, asked, asked_name, hint, held_name)


def create_model(
        model_name: str,
        pretrained: bool = False,
        *,
        checkpoint_path: Optional[Union[str, os.PathLike]] = None,
        **kwargs: Any,
) -> torch.nn.Module:
    """Create a Mask3D (or any timm) model.

    ``model_name`` is a registry name (``mask3d_vit_base_patch16``), ``name.tag``, ``hf-hub:org/repo@rev`` or
    ``local-dir:DIR``; with ``pretrained=True`` the weights file is checked against the sha256 recorded in the
    release manifest and the export's config.json. ``checkpoint_path`` loads a local ``.safetensors`` file or a checkpoint the user wrote
    (``.pt``/``.pth``, read with ``weights_only=True``), including a ``mask3d pretrain`` run checkpoint, whose
    encoder is extracted. Other kwargs go to ``timm.create_model``.
    """
    _check_name(model_name)
    model_name = _official_name_of_hub_id(model_name)
    if pretrained:
        load_name = _verify_source(model_name, kwargs.get('pretrained_cfg_overlay'))
    else:
        load_name = model_name
    with translate_hub_errors(model_name):
        try:
            model = timm.create_model(load_name, pretrained=pretrained, **kwargs)
        except RuntimeError as e:  # timm's strict load: one line per mis-shaped key
            if pretrained and 'Error(s) in loading state_dict' in str(e):
                raise CheckpointMismatchError(_weights_do_not_fit(model_name, kwargs, e)) from e
            raise
    if checkpoint_path is not None:
        load_checkpoint(model, checkpoint_path)
    return model
