"""The YAML configs and the release manifest: package data of a light package (no torch, no timm).

``mask3d`` (the manifest names the official weights) and the ``mask3d`` command (it lists and resolves configs before
anything heavy loads) both read them here, so the library never imports the command's package.

The files stay where users browse them, ``training/configs/**.yaml`` and ``hub/manifest.yaml``. pyproject.toml maps
the package folders ``mask3d_resources/configs`` and ``mask3d_resources/hub`` onto those folders, so a wheel holds
them with nothing copied at build time, and a new config folder or file ships without being listed. A clone or an
editable install has no such folders inside the package: there the files are read in place from the repository, so
an edit is seen without reinstalling.
"""
from importlib.resources import files
from pathlib import Path
from typing import Dict, Optional

PACKAGE_FOLDER = Path(str(files(__name__))).resolve()   # a folder on disk: wheels are installed unzipped
_REPOSITORY = PACKAGE_FOLDER.parent                      # the repository root in a clone; site-packages when installed

CONFIGS_IN_SOURCE = Path('training') / 'configs'
MANIFEST_IN_SOURCE = Path('hub') / 'manifest.yaml'


def configs_root() -> Path:
    """The folder of YAML configs (``<family>/<name>.yaml``)."""
    packaged = files(__name__) / 'configs'
    return Path(str(packaged)) if packaged.is_dir() else _REPOSITORY / CONFIGS_IN_SOURCE


def manifest_path() -> Path:
    """The release manifest: the wheel's read-only copy when installed, ``hub/manifest.yaml`` in a clone."""
    packaged = files(__name__) / 'hub' / 'manifest.yaml'
    return Path(str(packaged)) if packaged.is_file() else _REPOSITORY / MANIFEST_IN_SOURCE


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
    from mask3d.errors import ConfigError  # only for a bad name: importing mask3d loads torch and timm

    if matches:
        raise ConfigError(f"config '{value}' is ambiguous: {', '.join(matches)}; write it with its folder")
    names = ', '.join(k for k in available if family is None or k.startswith(f'{family}/')) or 'none'
    raise ConfigError(f"config '{value}': no such file and no bundled config of that name "
                      f"(`mask3d configs` lists them; {family or 'all'}: {names})")
