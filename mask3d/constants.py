"""Values several modules must agree on, each defined once."""
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ['IGNORE_INDEX', 'IMAGENET_DEFAULT_MEAN', 'IMAGENET_DEFAULT_STD']

IGNORE_INDEX = 255
"""Label id of pixels no loss or metric counts (void, unlabelled, a class outside the benchmark), as the
Cityscapes, NYUv2, ScanNet and SUN RGB-D train ids use it."""
