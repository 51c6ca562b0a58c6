"""mask3d: Mask3D (CVPR 2023) RGB-D pre-trained ViT backbones for timm.

``import mask3d`` registers ``mask3d_vit_{tiny,small,base,large}`` (and the same models as ``..._patch16``) in timm.
"""
from . import models  # noqa: F401  (registration side effect)
from .errors import (BadDataFileError, CheckpointMismatchError, ConfigError, DataError,  # noqa: F401
                     InvalidWeightsFileError, LabelRangeError, Mask3DError, MissingDataError, NonFiniteLossError,
                     UnknownModelError,
                     WeightsDownloadError, WeightsNotCachedError, WeightsNotPublishedError)
from .export import save_pretrained  # noqa: F401
from .factory import create_model, list_models  # noqa: F401
from .loading import load_checkpoint  # noqa: F401
from .version import __version__  # noqa: F401
