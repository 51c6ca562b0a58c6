"""Fine-tuning on downstream tasks (work in progress: metrics first; heads and tasks follow in issue 5)."""
from .metrics import DepthMetrics, SegmentationMetrics  # noqa: F401
