from conftest import REPO_ROOT


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO_ROOT / 'README.md').read_text()
    ci = (REPO_ROOT / '.ci' / 'run').read_text()
    command = next(line for line in ci.splitlines() if line.startswith('python3 -m venv'))
    assert command in readme
    assert readme.index('mask3d pretrain --config training/configs/pretrain/synthetic_tiny.yaml') < readme.index(command)
