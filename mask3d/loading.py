"""Loading weights: fetch from the Hub or a local folder, check sha256, read a state dict safely, load it strictly.

Which official weights exist is the release manifest's answer (``hub/manifest.yaml``, shipped in the wheel), never
the Hub's: an official name (``mask3d_vit_base_patch16.scannet``, or ``hf-hub:`` with the repo the manifest plans for
it) loads only a release the manifest pins with a Hub commit id and the sha256 of its ``model.safetensors``. The
download asks for that commit, and the file is checked before it is opened. A name without a pinned release is
"not published yet" without contacting the Hub: whoever creates the planned organisation cannot supply weights.
Other ``hf-hub:`` repos and ``local-dir:`` folders are checked against the sha256 that ``save_pretrained`` records
in each export's ``config.json``. Files the user names are read as safetensors or with
``torch.load(weights_only=True)``, never unpickled, and loaded strictly with every misfit listed.
"""
import contextlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from timm.models import PretrainedCfg, resolve_pretrained_cfg

from .errors import (CheckpointMismatchError, InvalidWeightsFileError, WeightsDownloadError, WeightsNotCachedError,
                     WeightsNotPublishedError)
from .safe_load import load_torch_file
from .unwrap import vit_inside
from .weights_fit import checkpoint_filter_fn, mismatch_message, vit_shape

_MAX_LISTED = 8
SAFE_WEIGHTS_NAME = 'model.safetensors'
EXPORT_METADATA_KEY = 'mask3d'
"""Top-level ``config.json`` key holding what mask3d records about an export (sha256, init, data, steps)."""

_HOW_TO_GET_WEIGHTS = (
    "train your own with `mask3d pretrain` + `mask3d export RUN --out DIR`, then load it with "
    "mask3d.create_model('local-dir:DIR', pretrained=True) or "
    "mask3d.create_model(NAME, checkpoint_path='model.safetensors')"
)


def manifest_entry(repo_id: str):
    """The release manifest's entry for ``repo_id`` (None if it has none, or no manifest is installed)."""
    from mask3d_resources import manifest_path

    from .manifest import find_release, load_manifest
    path = manifest_path()
    if not path.is_file():
        return None
    return find_release(load_manifest(path), repo_id)


def check_sha256(path: Union[str, Path], expected: Optional[str], recorded_in: str, shown_as: str) -> None:
    """Refuse a weights file whose sha256 differs from the one recorded for it (before it is opened)."""
    if not expected:
        return
    from .manifest import sha256_file
    actual = sha256_file(path)
    if actual != expected:
        raise InvalidWeightsFileError(
            f"{shown_as}: sha256 {actual} differs from {expected} recorded in {recorded_in}, so the file was not "
            f"loaded; it is corrupt or was replaced: delete it ({path}) and download or export it again")


def read_export_config(path: Union[str, Path]) -> Dict[str, Any]:
    """An export's ``config.json`` as a dict; a malformed one is a one-line error naming the file."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidWeightsFileError(f"{path}: not a readable JSON config ({first}); export the folder again with "
                                      f"mask3d.save_pretrained or `mask3d export`") from e
    if not isinstance(config, dict) or not isinstance(config.get('architecture'), str):
        raise InvalidWeightsFileError(f"{path}: not a timm config.json (it needs an \"architecture\" string and "
                                      f"\"pretrained_cfg\"); export the folder again with mask3d.save_pretrained")
    meta = config.get(EXPORT_METADATA_KEY, {})
    if not isinstance(meta, dict) or not isinstance(meta.get('sha256', ''), (str, type(None))):
        raise InvalidWeightsFileError(f"{path}: its \"{EXPORT_METADATA_KEY}\" entry must be an object with a "
                                      f"\"sha256\" string; export the folder again")
    return config


def recorded_sha256(config_path: Union[str, Path]) -> Optional[str]:
    """The sha256 of model.safetensors that ``save_pretrained`` wrote into an export's config.json (None: none)."""
    if not Path(config_path).is_file():
        return None
    return read_export_config(config_path).get(EXPORT_METADATA_KEY, {}).get('sha256')


def not_published_message(name: str) -> str:
    return (f"`{name}` is not published yet: the release manifest pins no Hub commit and sha256 for it, so no "
            f"download is tried; {_HOW_TO_GET_WEIGHTS}")


def fetch_release(entry, *, name: Optional[str] = None, revision: Optional[str] = None) -> Path:
    """The pinned ``model.safetensors`` of a manifest release, checked against its sha256 before anyone opens it."""
    from huggingface_hub import hf_hub_download

    name = name or entry.name
    if not entry.published:
        raise WeightsNotPublishedError(not_published_message(name))
    if revision and revision != entry.revision:
        raise WeightsDownloadError(
            f"hf-hub:{entry.repo_id}@{revision}: official weights `{entry.name}` load only at the commit the release "
            f"manifest pins ({entry.revision}); drop '@{revision}'")
    location = f'hf-hub:{entry.repo_id}@{entry.revision}'
    with translate_hub_errors(location, repo_id=entry.repo_id, revision=entry.revision):
        weights = hf_hub_download(entry.repo_id, SAFE_WEIGHTS_NAME, revision=entry.revision)
    check_sha256(weights, entry.sha256, 'the release manifest', f'{location} {SAFE_WEIGHTS_NAME}')
    return Path(weights)


def fetch_verified(repo_id: str, *, revision: Optional[str] = None, official_name: Optional[str] = None) -> Path:
    """Download (or find in the cache) ``repo_id``'s model.safetensors and check it against every recorded sha256.

    A repo the release manifest plans (or ``official_name``, a registered ``arch.tag``) loads only as a pinned
    release (:func:`fetch_release`); any other repo is the user's choice, checked against its own config.json.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hf_errors

    entry = manifest_entry(repo_id)
    if entry is not None:
        return fetch_release(entry, name=official_name, revision=revision)
    if official_name is not None:
        raise WeightsNotPublishedError(not_published_message(official_name))
    location = f'hf-hub:{repo_id}' + (f'@{revision}' if revision else '')
    with translate_hub_errors(location, repo_id=repo_id, revision=revision):
        weights = hf_hub_download(repo_id, SAFE_WEIGHTS_NAME, revision=revision)
        try:
            config = hf_hub_download(repo_id, 'config.json', revision=revision)
        except (hf_errors.EntryNotFoundError, hf_errors.LocalEntryNotFoundError):
            config = None
    if config is not None:
        check_sha256(weights, recorded_sha256(config), 'the repo\'s config.json', f'{location} {SAFE_WEIGHTS_NAME}')
    return Path(weights)


def check_pretrained_source(
        variant: str,
        pretrained_cfg: Optional[Union[str, Dict[str, Any], PretrainedCfg]],
        overlay: Optional[Dict[str, Any]],
) -> Tuple[Optional[Union[str, Dict[str, Any], PretrainedCfg]], str]:
    """Validate where ``pretrained=True`` would load from; returns the cfg to use and a readable location.

    An official tag is fetched here (only a release the manifest pins, at its commit, sha256 checked) and handed to
    timm as a local file; Hub downloads are forced to safetensors, so a pickle from the Hub is never loaded.
    """
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=overlay)
    if cfg.source == 'local-dir':
        return pretrained_cfg, f'local folder {cfg.file}'
    if cfg.state_dict is not None:
        return pretrained_cfg, 'in-memory state dict'
    if cfg.file:
        return pretrained_cfg, f'file {cfg.file}'
    if cfg.hf_hub_filename and not cfg.hf_hub_filename.endswith('.safetensors'):
        raise InvalidWeightsFileError(
            f"refusing to download '{cfg.hf_hub_filename}' from hf-hub:{cfg.hf_hub_id}: mask3d loads Hub "
            f"weights only from safetensors; ask the repo owner for a {SAFE_WEIGHTS_NAME}")
    name = f'{variant}.{cfg.tag}' if cfg.tag else variant
    if cfg.hf_hub_id:
        registered = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg).hf_hub_id
        official = name if cfg.source != 'hf-hub' and cfg.hf_hub_id == registered else None
        path = fetch_verified(cfg.hf_hub_id, official_name=official)
        as_dict = cfg.to_dict()
        as_dict.update(file=str(path), source='')  # timm loads the verified file, not a second download
        return as_dict, f'hf-hub:{cfg.hf_hub_id} ({SAFE_WEIGHTS_NAME})'
    if not cfg.url:
        raise WeightsNotPublishedError(not_published_message(name))
    return pretrained_cfg, cfg.url


def _predownload_hint(repo_id: Optional[str], revision: Optional[str]) -> str:
    if not repo_id:
        return 'pre-download it on a machine with network (same HF_HOME)'
    rev = f' --revision {revision}' if revision else ''
    return (f'pre-download it on a machine with network (`hf download {repo_id} {SAFE_WEIGHTS_NAME} config.json{rev}`, '
            f'same HF_HOME)')


@contextlib.contextmanager
def translate_hub_errors(location: str, *, repo_id: Optional[str] = None, revision: Optional[str] = None):
    """Re-raise Hub and safetensors failures as one-line mask3d errors naming ``location``."""
    from huggingface_hub import errors as hf_errors
    from safetensors import SafetensorError

    try:
        yield
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as e:
        raise WeightsNotCachedError(
            f"{location} is not in the local Hugging Face cache and the Hub cannot be reached (offline); "
            f"{_predownload_hint(repo_id, revision)}, or pass a local file with checkpoint_path= or a folder with "
            f"'local-dir:DIR'") from e
    except hf_errors.RepositoryNotFoundError as e:
        raise WeightsDownloadError(f"{location}: repository not found on the Hub (check the id, or log in "
                                   f"with `hf auth login` if it is private)") from e
    except hf_errors.RevisionNotFoundError as e:
        raise WeightsDownloadError(f"{location}: revision not found on the Hub") from e
    except hf_errors.EntryNotFoundError as e:
        raise WeightsDownloadError(
            f"{location}: file not found in the Hub repository; mask3d loads only {SAFE_WEIGHTS_NAME} "
            f"(a pickle such as pytorch_model.bin is refused)") from e
    except SafetensorError as e:
        raise InvalidWeightsFileError(f"{location}: not a valid safetensors file ({e})") from e


def load_state_dict_file(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a weights file the user chose: safetensors, or a torch checkpoint with ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / SAFE_WEIGHTS_NAME
    if not path.is_file():
        raise InvalidWeightsFileError(f"{path}: no such file")
    if path.suffix == '.safetensors':
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        if path.name == SAFE_WEIGHTS_NAME:  # inside an export: its config.json records the file's sha256
            config = path.with_name('config.json')
            check_sha256(path, recorded_sha256(config), str(config), str(path))
        try:
            return load_file(str(path), device='cpu')
        except SafetensorError as e:
            raise InvalidWeightsFileError(f"{path}: not a valid safetensors file ({e})") from e
    return load_torch_file(path, 'weights file')


_PRUNED_BY_FEATURES = ('norm.', 'fc_norm.', 'head.', 'head_drop.')


def load_checkpoint(model: torch.nn.Module, path: Union[str, os.PathLike]) -> None:
    """Load ``path`` strictly into ``model``, listing every missing, unexpected or mis-shaped key on failure."""
    load_state_dict_into(model, load_state_dict_file(path), str(path))


def load_state_dict_into(model: torch.nn.Module, state_dict: Dict[str, Any], source: str) -> None:
    """Filter (unwrap, strip pre-training keys, resample pos_embed) and load strictly; errors list the misfits."""
    target, _ = vit_inside(model)
    state_dict = checkpoint_filter_fn(state_dict, target)
    own = target.state_dict()
    if not any(k.startswith('head.') for k in own):  # a backbone (num_classes=0) takes a classifier file's trunk
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith('head.')}
    if target is not model:  # features_only: timm pruned the layers after the last feature block (norm, head)
        state_dict = {k: v for k, v in state_dict.items() if k in own or not k.startswith(_PRUNED_BY_FEATURES)}
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(f'{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}'
                    for k in set(own) & set(state_dict) if state_dict[k].shape != own[k].shape)
    arch = getattr(target, 'pretrained_cfg', {}).get('architecture', type(target).__name__)
    held = {k: tuple(v.shape) for k, v in state_dict.items() if hasattr(v, 'shape')}
    asked = {k: tuple(v.shape) for k, v in own.items()}
    if (missing or unexpected or shapes) and vit_shape(held) and vit_shape(held) != vit_shape(asked):
        raise CheckpointMismatchError(mismatch_message(
            source, held, asked, arch, 'build the model with the architecture the weights were trained with '
            '(model.name, model.arch or model.model_args)'))
    if missing or unexpected or shapes:
        def fmt(title, items):
            more = f' (+{len(items) - _MAX_LISTED} more)' if len(items) > _MAX_LISTED else ''
            return f"{title}: {', '.join(items[:_MAX_LISTED])}{more}" if items else ''
        parts = [p for p in (fmt('missing', missing), fmt('unexpected', unexpected), fmt('shape', shapes)) if p]
        raise CheckpointMismatchError(
            f"{source} does not fit {arch} -- {'; '.join(parts)}; build the model with the architecture the checkpoint was trained with")
    target.load_state_dict(state_dict, strict=True)
