"""The licence of derived weights: weights trained from an init inherit the init's terms unless those are permissive.

Used by ``mask3d export`` (the card's licence and ``base_model``), ``save_pretrained(license=...)`` and ``mask3d push``
(each refuses a licence that conflicts with the init's, e.g. Apache-2.0 on weights initialised from CC-BY-NC-4.0 MAE
weights).
"""
import json
from pathlib import Path
from typing import Optional, Tuple

PERMISSIVE = frozenset({'apache-2.0', 'mit', 'bsd-2-clause', 'bsd-3-clause', 'cc-by-4.0', 'cc0-1.0'})
CODE_LICENSE = 'apache-2.0'
UNKNOWN = 'other'  # the Hub's value for a licence it has no id for


def init_license_and_base(init: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(licence, Hub base_model) of a ``model.init`` value; (None, None) when it cannot be known (a bare file).

    timm names carry their licence and Hub repo in their pretrained cfg (``vit_base_patch16_224.mae``:
    cc-by-nc-4.0, ``timm/vit_base_patch16_224.mae``); exported folders and Hub repos in their config.json.
    """
    if not init:
        return CODE_LICENSE, None
    if init.startswith('hf-hub:'):
        repo_id = init[len('hf-hub:'):].split('@')[0]
        return _config_license(_cached_hub_config(repo_id)), repo_id
    folder = Path(init[len('local-dir:'):] if init.startswith('local-dir:') else init)
    if folder.is_dir():
        return _config_license(folder / 'config.json'), None
    if folder.exists():
        return None, None
    import timm
    try:
        cfg = timm.models.get_pretrained_cfg(init, allow_unregistered=False)
    except RuntimeError:  # not a timm name either (timm: 'Invalid pretrained tag', 'no pretrained cfg registered')
        cfg = None
    if cfg is None:
        return None, None
    return cfg.license, cfg.hf_hub_id


def derived_license(init_license: Optional[str], *, has_init: bool) -> Optional[str]:
    """The licence weights trained from an init with ``init_license`` carry before anyone states one.

    None (not stated) for weights from scratch or a permissive init: the code's Apache-2.0 says nothing about
    weights, so only their owner can state one (``mask3d export --license``). A non-permissive init's terms are
    inherited; an init of unknown terms gives ``other`` (the Hub's value for "see the card").
    """
    if not has_init:
        return None
    if init_license is None:
        return UNKNOWN
    return None if init_license.lower() in PERMISSIVE else init_license.lower()


def license_conflict(card_license: str, init_license: Optional[str]) -> Optional[str]:
    """Why ``card_license`` may not be used for weights derived from an init under ``init_license`` (None: fine)."""
    if init_license is None or init_license.lower() in PERMISSIVE:
        return None
    if card_license.lower() != init_license.lower():
        return (f"licence {card_license} conflicts with the init weights' {init_license}: weights trained from them "
                f"inherit {init_license}")
    return None


def _cached_hub_config(repo_id: str) -> Optional[Path]:
    from huggingface_hub import try_to_load_from_cache
    found = try_to_load_from_cache(repo_id, 'config.json')
    return Path(found) if isinstance(found, str) else None


def _config_license(path: Optional[Path]) -> Optional[str]:
    try:
        return json.loads(path.read_text()).get('pretrained_cfg', {}).get('license')
    except (AttributeError, OSError, ValueError):
        return None
