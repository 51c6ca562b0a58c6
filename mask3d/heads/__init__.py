"""Task heads that wrap a ``features_only`` ViT backbone without changing it (one concept per file).

Torch only: torchvision is imported when ``build_mask_rcnn`` is called, not before, so the dense heads work with
the slim install (``pip install mask3d``).
"""
from .backbone import BackboneLayerDecay, build_backbone, default_out_indices  # noqa: F401
from .dense import DenseModel, build_depth_model, build_segmentation_model  # noqa: F401
from .dpt import DPTDepthHead  # noqa: F401
from .linear import LinearSegHead  # noqa: F401
from .mask_rcnn import PyramidBackbone, build_mask_rcnn  # noqa: F401
from .pyramid import SimpleFeaturePyramid  # noqa: F401
from .upernet import UPerNetHead  # noqa: F401
