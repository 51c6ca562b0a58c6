"""Every test runs offline: sockets are blocked and the Hugging Face cache is a fresh temporary folder.

``MASK3D_HIDE_SHARED=1`` makes the real-data fixture behave as if ``../shared`` were absent (CI's second pass, see
docs/testing.md); tests that use ``rgbd_data`` get the ``shared_data`` marker, so that pass can select them."""
import os
import socket
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_RGBD = REPO_ROOT.parent / 'shared' / 'data' / 'rgbd'
HIDE_SHARED_ENV = 'MASK3D_HIDE_SHARED'  # also read by benchmarks/_shared_data.py

torch.set_num_threads(2)

# pytest-timeout limits per tier (seconds): 2.5-7x the slowest test of the tier measured on 2 cores shared with 5 other
# jobs (docs/testing.md), so a busy machine does not trip them but a hung torchrun or pip does; unit tests get `timeout`
# from pyproject.toml and a test's own @pytest.mark.timeout wins.
TIER_TIMEOUTS = {'e2e': 900, 'bench': 600, 'ddp': 900, 'packaging': 900, 'slow': 900}


def shared_hidden() -> bool:
    return os.environ.get(HIDE_SHARED_ENV, '') not in ('', '0')


def pytest_collection_modifyitems(items):
    for item in items:
        if 'rgbd_data' in getattr(item, 'fixturenames', ()):
            item.add_marker(pytest.mark.shared_data)
        limits = [limit for tier, limit in TIER_TIMEOUTS.items() if item.get_closest_marker(tier)]
        if limits and not item.get_closest_marker('timeout'):
            item.add_marker(pytest.mark.timeout(max(limits)))


class _BlockedSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        family = args[0] if args else kwargs.get('family', socket.AF_INET)
        if family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError('network access in tests is not allowed (socket blocked by conftest.py)')
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def offline_hub(tmp_path_factory, monkeypatch):
    """Block IP sockets; point the Hub cache at an empty temp dir; put huggingface_hub in offline mode."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(socket, 'socket', _BlockedSocket)
    cache = tmp_path_factory.mktemp('hf_cache')
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(cache))
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_CACHE', str(cache))
    yield cache


@pytest.fixture
def rgbd_data() -> Path:
    """The shared real RGB-D frames; tests using it skip cleanly where the folder is absent."""
    if shared_hidden():
        pytest.skip(f'{SHARED_RGBD} hidden ({HIDE_SHARED_ENV}=1)')
    if not SHARED_RGBD.is_dir():
        pytest.skip(f'{SHARED_RGBD} not present')
    return SHARED_RGBD


def tiny_kwargs(**extra):
    """A 2-block ViT-Tiny: the real architecture family at test speed."""
    return dict(depth=2, **extra)
