"""The light commands answer the same through ``mask3d`` and ``python -m mask3d``, without torch or timm."""
import re
import subprocess
import sys

import pytest

import mask3d
from mask3d_cli import main


@pytest.mark.e2e
@pytest.mark.parametrize('argv', [['--version'], ['configs']])
def test_python_m_light_commands_do_not_import_torch(argv):
    out = subprocess.run([sys.executable, '-X', 'importtime', '-m', 'mask3d', *argv], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.rsplit('|', 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith('import time')}
    assert 'torch' not in imported and 'timm' not in imported and 'mask3d.models' not in imported
    if argv == ['--version']:
        assert out.stdout.strip() == f'mask3d {mask3d.__version__}'


def test_configs_descriptions_end_on_a_word(capsys):
    from mask3d_resources import list_configs
    assert main(['configs']) == 0
    shown = {}
    for line in capsys.readouterr().out.splitlines()[1:]:
        key, _, description = line.strip().partition(' ')
        shown[key] = description.strip()
    for key, path in list_configs().items():
        full = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith('#')), '')
        cut = shown[key].removesuffix(' ...')
        assert full.startswith(cut) and len(shown[key]) <= 72, key
        assert cut == full or full[len(cut)] in ' ,;:', f'{key}: cut mid-word: {shown[key]!r}'
