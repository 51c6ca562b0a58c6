"""Several frame sources in one pre-training set, drawn with per-source weights.

Item ``i`` picks a source with probability proportional to its weight and a frame of it uniformly, both from
``default_rng([seed, i])``: deterministic, so resumption and DDP stay exact.
"""
from typing import Sequence, Tuple

import numpy as np

from ...errors import DataError


class MixtureFrames:
    def __init__(self, sources: Sequence[Tuple[object, float]], length: int, seed: int = 0):
        if not sources:
            raise DataError('a mixture needs at least one source')
        weights = np.array([w for _, w in sources], dtype=np.float64)
        if not (np.isfinite(weights) & (weights > 0)).all():  # NaN would pass `<= 0` and leave its source out
            raise DataError(f'mixture weights must be > 0 and finite, got {weights.tolist()}')
        for dataset, _ in sources:
            if len(dataset) == 0:
                raise DataError(f'mixture source {dataset!r} is empty')
        self.sources = [d for d, _ in sources]
        self.skipped_at_listing = [m for d in self.sources for m in getattr(d, 'skipped_at_listing', ())]
        self.cumulative = np.cumsum(weights / weights.sum())
        self.length, self.seed = int(length), seed

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> Tuple[int, int]:
        rng = np.random.default_rng([self.seed, index])
        s = int(np.searchsorted(self.cumulative, rng.random(), side='right'))
        s = min(s, len(self.sources) - 1)
        return s, int(rng.integers(0, len(self.sources[s])))

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        s, i = self.locate(index)
        sample = self.sources[s][i]
        sample['mixture_source'] = s
        return sample
