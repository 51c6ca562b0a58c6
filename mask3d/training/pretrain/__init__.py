"""The Mask3D pre-training method: the model (``pretrainer``), the masks (``masking``), the depth targets
(``depth_targets``), the loss (``losses``), the depth errors without an oracle (``depth_eval``), ``rgb_reliance``
(``reliance``), its config (``config``), data sources (``data``), figures (``figures``), the run (``engine``) and the
command (``cli``). It runs on ``mask3d.training.runtime``."""
