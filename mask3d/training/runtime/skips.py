"""``data.skip_bad``, shared by pre-training and fine-tuning: a bad frame is logged and left out instead of stopping
the run, and the count of frames left out is kept across ranks and ``--resume``.

Two moments: while listing (the readers' ``skipped_at_listing``: the same on every rank and every start) and while
reading (a frame that fails to decode is replaced by the next one; counted per rank, summed at log steps and saved
in the checkpoint as ``skipped_frames_read``). Evaluation never uses this: see docs/troubleshooting.md, "Data".
"""
import logging
from typing import Any, Dict, Tuple

import torch

from .distributed import DistInfo, all_reduce_mean

_log = logging.getLogger(__name__)


def load_skipping(frames, index: int, *, skip_bad: bool, max_skips: int = 100) -> Tuple[Dict[str, Any], int]:
    """(frame, how many bad frames were skipped to reach it): ``frames[index]``, or with ``skip_bad`` the next
    readable frame after it (wrapping around); more than ``max_skips`` bad frames in a row raise the last error."""
    skipped = 0
    while True:
        at = (index + skipped) % len(frames)
        try:
            return frames[at], skipped
        except (ValueError, OSError) as e:  # the data errors (mask3d.errors.DataError is a ValueError) and I/O
            if not skip_bad or skipped >= max_skips:
                raise
            _log.warning('skip_bad: skipping frame %d: %s', at, e)
            skipped += 1


class SkipCounter:
    """``data.skip_bad``'s count: frames left out while listing, plus bad frames skipped while reading on every
    rank; the read part is stored in checkpoints, so the count goes on where ``--resume`` picks up."""

    def __init__(self, info: DistInfo, *, listed: int, read: int):
        self.info, self.listed, self.read, self.local = info, listed, read, 0

    @classmethod
    def for_run(cls, info: DistInfo, frames, state=None) -> 'SkipCounter':
        """Listed skips from ``frames`` (a reader built with ``skip_bad``), read skips from a resumed checkpoint."""
        return cls(info, listed=len(getattr(frames, 'skipped_at_listing', ())),
                   read=int(state.get('skipped_frames_read', 0)) if state else 0)

    def add(self, batch: Dict[str, Any]) -> None:
        """Count a micro-batch's read-time skips (its ``skipped`` entry) on this rank."""
        self.local += int(batch['skipped'].sum())

    def gather(self) -> None:
        """Add the skips every rank made since the last call (a collective with DDP: all ranks call it)."""
        new = torch.tensor([float(self.local)], device=self.info.device)
        self.read += int(round(float(all_reduce_mean(new, self.info)[0]) * self.info.world_size))
        self.local = 0

    @property
    def total(self) -> int:
        return self.listed + self.read
