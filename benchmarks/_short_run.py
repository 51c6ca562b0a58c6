"""A short pre-training run in a temporary folder, logging every step: shared by the loop and precision benchmarks."""
import tempfile
from typing import Dict, List

from mask3d.training.pretrain.engine import pretrain
from mask3d.training.runtime.metrics_log import read_metrics


def short_run_metrics(cfg, steps: int) -> List[Dict]:
    """Run ``cfg`` for ``steps`` steps (no figures, checkpoints or export) and return its metrics.jsonl records."""
    cfg.train.steps = steps
    cfg.train.log_every = 1
    cfg.train.figure_every = 10 ** 9
    cfg.train.ckpt_every = 10 ** 9
    cfg.train.export_at_end = False
    with tempfile.TemporaryDirectory() as run:
        pretrain(cfg, run, progress=False)
        return read_metrics(run)
