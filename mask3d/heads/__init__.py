"""Task heads that wrap a ``features_only`` ViT backbone without changing it (one concept per file)."""
from .dpt import DPTDepthHead  # noqa: F401
from .linear import LinearSegHead  # noqa: F401
from .simple_fpn import SimpleFeaturePyramid  # noqa: F401
from .upernet import UPerNetHead  # noqa: F401
