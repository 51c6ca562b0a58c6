"""Training: the pre-training method that produces the mask3d weights (``pretrain/``), fine-tuning (``finetune/``)
and probing (``probe/``), on a shared run machinery that knows no method (``runtime/``), the data readers
(``data/``) and the config machinery (``config.py``). Needs ``mask3d[train]``."""
from .pretrain.masking import random_patch_mask  # noqa: F401
from .pretrain.pretrainer import Mask3DPretrainer, PretrainMethodConfig  # noqa: F401
from .pretrain.reliance import rgb_reliance  # noqa: F401
from .pretrain.depth_eval import depth_reconstruction_errors  # noqa: F401
