"""Training: pre-training that produces the mask3d weights, fine-tuning (``finetune/``) and probing (``probe/``).
Needs ``mask3d[train]``."""
from .masking import random_patch_mask  # noqa: F401
from .pretrainer import Mask3DPretrainer, PretrainMethodConfig  # noqa: F401
from .reliance import rgb_reliance  # noqa: F401
from .depth_eval import depth_reconstruction_errors  # noqa: F401
