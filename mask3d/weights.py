"""Where pretrained weights come from, and turning Hub failures into errors that say what to do.

The single list of released weights is ``hub/manifest.yaml`` in the source tree. This module carries the two
facts the installed package needs from it: the Hub organisation and which tags are published (a test keeps
them in sync with the manifest).
"""
import contextlib
from typing import Any, Dict, Optional, Tuple, Union

from timm.models import PretrainedCfg, resolve_pretrained_cfg

from .errors import InvalidWeightsFileError, WeightsDownloadError, WeightsNotCachedError, WeightsNotPublishedError

HF_HUB_ORG = 'mask3d'
"""Hugging Face organisation that hosts the official weights (``{HF_HUB_ORG}/{arch}.{tag}``)."""

PUBLISHED_TAGS = frozenset()
"""``arch.tag`` names whose weights are on the Hub. Empty until the first release (see hub/manifest.yaml)."""

SAFE_WEIGHTS_NAME = 'model.safetensors'

_HOW_TO_GET_WEIGHTS = (
    "train your own with `mask3d pretrain` + `mask3d export RUN --out DIR`, then load it with "
    "mask3d.create_model('local-dir:DIR', pretrained=True) or "
    "mask3d.create_model(NAME, checkpoint_path='model.safetensors')"
)


def check_pretrained_source(
        variant: str,
        pretrained_cfg: Optional[Union[str, Dict[str, Any], PretrainedCfg]],
        overlay: Optional[Dict[str, Any]],
) -> Tuple[Optional[Union[str, Dict[str, Any], PretrainedCfg]], str]:
    """Validate where ``pretrained=True`` would load from; returns the cfg to use and a readable location.

    Refuses official tags that are not published yet, and forces safetensors for Hub downloads so that a
    pickle file from the Hub is never loaded.
    """
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=overlay)
    if cfg.source == 'local-dir':
        return pretrained_cfg, f'local folder {cfg.file}'
    if cfg.state_dict is not None:
        return pretrained_cfg, 'in-memory state dict'
    if cfg.file:
        return pretrained_cfg, f'file {cfg.file}'
    if cfg.source == 'hf-hub':
        if cfg.hf_hub_filename and not cfg.hf_hub_filename.endswith('.safetensors'):
            raise InvalidWeightsFileError(
                f"refusing to download '{cfg.hf_hub_filename}' from hf-hub:{cfg.hf_hub_id}: mask3d loads Hub "
                f"weights only from safetensors; ask the repo owner for a {SAFE_WEIGHTS_NAME}")
        as_dict = cfg.to_dict() if not isinstance(pretrained_cfg, dict) else dict(pretrained_cfg)
        as_dict['hf_hub_filename'] = cfg.hf_hub_filename or SAFE_WEIGHTS_NAME
        return as_dict, f'hf-hub:{cfg.hf_hub_id} ({as_dict["hf_hub_filename"]})'
    name = f'{variant}.{cfg.tag}' if cfg.tag else variant
    if cfg.hf_hub_id and cfg.hf_hub_id.startswith(f'{HF_HUB_ORG}/') and name not in PUBLISHED_TAGS:
        raise WeightsNotPublishedError(
            f"weights '{name}' are not published yet (planned at hf-hub:{cfg.hf_hub_id}); "
            f"{_HOW_TO_GET_WEIGHTS}; `mask3d models` lists what is released")
    if not (cfg.hf_hub_id or cfg.url):
        raise WeightsNotPublishedError(f"'{name}' has no pretrained weights; {_HOW_TO_GET_WEIGHTS}")
    return pretrained_cfg, f'hf-hub:{cfg.hf_hub_id} ({cfg.hf_hub_filename})'


@contextlib.contextmanager
def translate_hub_errors(location: str):
    """Re-raise Hub and safetensors failures as one-line mask3d errors naming ``location``."""
    from huggingface_hub import errors as hf_errors
    from safetensors import SafetensorError

    try:
        yield
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as e:
        raise WeightsNotCachedError(
            f"{location} is not in the local Hugging Face cache and the Hub cannot be reached (offline); "
            f"pre-download it on a machine with network (`hf download REPO {SAFE_WEIGHTS_NAME}`, same HF_HOME), "
            f"or pass a local file with checkpoint_path= or a folder with 'local-dir:DIR'") from e
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
