"""The own-training-loop example in docs/finetuning.md runs as written and learns."""
import re

import pytest

from conftest import REPO_ROOT


@pytest.mark.e2e
def test_finetuning_doc_example_runs_and_learns(capsys):
    text = (REPO_ROOT / 'docs' / 'finetuning.md').read_text()
    code = re.search(r'<!-- runnable example -->\n```python\n(.*?)```', text, re.S).group(1)
    scope = {}
    exec(compile(code, 'docs/finetuning.md', 'exec'), scope)
    assert scope['result']['pixel_acc'] > 0.3  # 15 steps on 8 frames: well above chance (1/12)
    assert 'mIoU' in capsys.readouterr().out
