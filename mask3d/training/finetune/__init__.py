"""Fine-tuning on downstream tasks (semantic segmentation, depth, instance segmentation) with the heads of
``mask3d.heads``: ``mask3d finetune`` / ``mask3d evaluate``."""
from ..metrics import DepthMetrics, SegmentationMetrics  # noqa: F401
