"""The wheel holds mask3d and mask3d.training, and nothing else (no tests, no data, no configs)."""
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO_ROOT


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    build = tmp_path_factory.mktemp('build')
    # offline: no build isolation (setuptools comes with the [dev] extra), no index
    result = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index',
                             '-w', str(out), str(REPO_ROOT)], capture_output=True, text=True,
                            env={'PATH': '/usr/bin:/bin', 'TMPDIR': str(build), 'HOME': str(build)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheels = list(out.glob('mask3d-*.whl'))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split('/')[0] for n in names}
    assert 'mask3d' in packages
    assert 'mask3d/__init__.py' in names and 'mask3d/training/__init__.py' in names
    assert 'mask3d/models/mask3d_vit.py' in names and 'mask3d/training/data/synthetic.py' in names
    assert not any(n.startswith(('tests/', 'training/', 'hub/', 'benchmarks/', 'docs/')) for n in names)
    assert not any(n.endswith(('.png', '.jpg', '.mat', '.npy', '.sens', '.pt', '.safetensors')) for n in names)
    meta = next(n for n in names if n.endswith('METADATA'))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    requires = [line for line in text.splitlines() if line.startswith('Requires-Dist') and 'extra ==' not in line]
    assert sorted(r.split()[1].split('>')[0].split('<')[0] for r in requires) == \
        ['huggingface-hub', 'safetensors', 'timm', 'torch']
    assert any(line.startswith('Provides-Extra: train') for line in text.splitlines())
    entry = next(n for n in names if n.endswith('entry_points.txt'))
    assert 'mask3d = mask3d.cli:main' in zipfile.ZipFile(wheel).read(entry).decode()
