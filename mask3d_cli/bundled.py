"""Where the YAML configs and the release manifest are: the source tree in a clone, the wheel's copy otherwise.

Light on purpose (no torch, no timm): the ``mask3d`` command lists and resolves configs before anything heavy loads.
The files users browse stay in ``training/configs/`` and ``hub/manifest.yaml``; setup.py copies them into
``mask3d_cli/_bundled/`` when a wheel is built, so every subfolder and file is picked up without listing it.
"""
from pathlib import Path
from typing import Dict, Optional

_HERE = Path(__file__).resolve().parent
_SOURCE_ROOT = _HERE.parent          # the repository root in a clone; site-packages when installed
BUNDLED = _HERE / '_bundled'

CONFIGS_IN_SOURCE = Path('training') / 'configs'
MANIFEST_IN_SOURCE = Path('hub') / 'manifest.yaml'


def configs_root() -> Path:
    """The folder of YAML configs (``<family>/<name>.yaml``)."""
    source = _SOURCE_ROOT / CONFIGS_IN_SOURCE
    return source if source.is_dir() else BUNDLED / 'configs'


def manifest_path() -> Path:
    """The release manifest: ``hub/manifest.yaml`` in a clone, the wheel's read-only copy otherwise."""
    source = _SOURCE_ROOT / MANIFEST_IN_SOURCE
    return source if source.is_file() else BUNDLED / 'manifest.yaml'


def list_configs(family: Optional[str] = None) -> Dict[str, Path]:
    """``{'pretrain/synthetic_tiny': path, ...}`` for every YAML under the configs folder (any subfolder)."""
    root = configs_root()
    found = {}
    for path in sorted(root.rglob('*.yaml')) if root.is_dir() else []:
        key = path.relative_to(root).with_suffix('').as_posix()
        if family is None or key.split('/')[0] == family:
            found[key] = path
    return found


def resolve_config(value: str, family: Optional[str] = None) -> Path:
    """A config file path, or a bundled name: ``synthetic_tiny``, ``pretrain/synthetic_tiny`` or ``...yaml``.

    A bare name is looked up first in ``family`` (the subcommand's folder), then in every folder; a name found in
    several folders must be written with its folder.
    """
    from mask3d.errors import ConfigError

    path = Path(value)
    if path.is_file():
        return path
    name = value[:-len('.yaml')] if value.endswith('.yaml') else value
    if name.startswith(CONFIGS_IN_SOURCE.as_posix() + '/'):  # a clone's path used outside the clone
        name = name[len(CONFIGS_IN_SOURCE.as_posix()) + 1:]
    available = list_configs()
    if name in available:
        return available[name]
    matches = [k for k in available if k.rsplit('/', 1)[-1] == name]
    preferred = [k for k in matches if family and k.split('/')[0] == family]
    if len(preferred) == 1 or len(matches) == 1:
        return available[(preferred or matches)[0]]
    if matches:
        raise ConfigError(f"config '{value}' is ambiguous: {', '.join(matches)}; write it with its folder")
    names = ', '.join(k for k in available if family is None or k.startswith(f'{family}/')) or 'none'
    raise ConfigError(f"config '{value}': no such file and no bundled config of that name "
                      f"(`mask3d configs` lists them; {family or 'all'}: {names})")
