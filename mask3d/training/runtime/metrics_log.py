"""``RUN/metrics.jsonl`` (and TensorBoard when installed): one JSON record per log step. A resumed run lists each
step once: the lines logged after its checkpoint are dropped (:func:`drop_metrics_after`) before they are logged
again."""
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict

_log = logging.getLogger(__name__)


class MetricsLogger:
    """metrics.jsonl always; TensorBoard (``prefix/key``) when it is installed. Main process only."""

    def __init__(self, run_dir: Path, enabled: bool, prefix: str):
        self.enabled, self.prefix, self.tb = enabled, prefix, None
        if not enabled:
            return
        self.path = run_dir / 'metrics.jsonl'
        logged = read_metrics(run_dir)  # a resumed run: TensorBoard hides events past the last kept step
        purge_step = max(r.get('step', 0) for r in logged) + 1 if logged else None
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(run_dir / 'tensorboard'), purge_step=purge_step)
        except ImportError:  # tensorboard not installed
            self.tb = None

    def log(self, record: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, 'a') as f:
            f.write(json.dumps(record) + '\n')
        if self.tb is not None:
            group = f"{self.prefix}/{record['split']}" if 'split' in record else self.prefix
            for k, v in record.items():
                if k != 'step' and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f'{group}/{k}', v, record['step'])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: Path) -> list:
    path = Path(run_dir) / 'metrics.jsonl'
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def drop_metrics_after(path: Path, step: int) -> int:
    """Keep the records of steps <= ``step``, and drop a last line cut short by a kill; returns how many went."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # written half when the process was killed
            record = None
        if not isinstance(record, dict) or record.get('step', 0) > step:
            dropped += 1
            continue
        kept.append(line + '\n')
    if dropped:
        tmp = path.with_name(f'.{path.name}.tmp.{os.getpid()}')
        tmp.write_text(''.join(kept))
        os.replace(tmp, path)
        _log.info('resuming at step %d: dropped %d line(s) of %s logged after that checkpoint', step, dropped, path)
    return dropped
