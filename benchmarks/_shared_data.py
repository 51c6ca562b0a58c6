"""Where the real RGB-D sample frames are: ``../shared/data/rgbd`` beside the checkout, or None where it is absent
or hidden with ``MASK3D_HIDE_SHARED=1`` (CI's second pass: every script must also run on a clone with nothing
beside it, on frames it makes itself). tests/conftest.py honours the same variable."""
import os
from pathlib import Path
from typing import Optional

HIDE_SHARED_ENV = 'MASK3D_HIDE_SHARED'
SHARED_RGBD = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'rgbd'


def shared_hidden() -> bool:
    return os.environ.get(HIDE_SHARED_ENV, '') not in ('', '0')


def shared_rgbd(*parts: str) -> Optional[Path]:
    """``../shared/data/rgbd/<parts>`` when that folder exists and is not hidden, else None."""
    if shared_hidden():
        return None
    path = SHARED_RGBD.joinpath(*parts)
    return path if path.is_dir() else None
