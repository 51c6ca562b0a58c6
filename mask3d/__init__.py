"""mask3d: Mask3D (CVPR 2023) RGB-D pre-trained ViT backbones for timm.

``import mask3d`` registers ``mask3d_vit_{tiny,small,base,large}`` (and the same models as ``..._patch16``) in timm.
"""
import sys as _sys


def _light_command_of_python_m() -> bool:
    """True while ``python -m mask3d --version`` (or ``--help``, ``configs``) imports this package before running
    ``__main__``: runpy sets ``sys.argv[0]`` to ``'-m'`` only then. Those commands need neither torch nor timm, so
    they answer here in 0.1 s as the ``mask3d`` script does, instead of after seconds of model registration."""
    if _sys.argv[:1] != ['-m'] or __name__ != 'mask3d':
        return False
    argv = getattr(_sys, 'orig_argv', [])
    at = next((i for i in range(len(argv) - 1) if argv[i] == '-m' and argv[i + 1] == 'mask3d'), None)
    rest = argv[at + 2:] if at is not None else None
    return rest is not None and (not rest or rest[0] in ('--version', '-h', '--help', 'configs'))


if _light_command_of_python_m():
    from mask3d_cli import main as _main
    _sys.exit(_main(_sys.argv[1:]))

from . import models  # noqa: E402,F401  (registration side effect)
from .errors import (BadDataFileError, CheckpointMismatchError, ConfigError, DataError,  # noqa: E402,F401
                     InvalidWeightsFileError, LabelRangeError, Mask3DError, MissingDataError, NonFiniteLossError,
                     UnknownModelError,
                     WeightsDownloadError, WeightsNotCachedError, WeightsNotPublishedError)
from .export import save_pretrained  # noqa: E402,F401
from .factory import create_model, list_models  # noqa: E402,F401
from .loading import load_checkpoint  # noqa: E402,F401
from .publish import push_to_hub  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
