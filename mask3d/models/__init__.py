"""Importing this package registers the mask3d_* architectures in timm."""
from .mask3d_vit import *  # noqa: F401,F403
from .mask3d_vit import default_cfgs  # noqa: F401
