from conftest import HIDE_SHARED_ENV, REPO_ROOT


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO_ROOT / 'README.md').read_text()
    ci = (REPO_ROOT / '.ci' / 'run').read_text()
    command = next(line for line in ci.splitlines() if line.startswith('python3 -m venv'))
    assert command in readme
    assert readme.index('mask3d pretrain --config training/configs/pretrain/synthetic_tiny.yaml') < readme.index(command)


def test_ci_runs_the_shared_data_tests_again_with_shared_hidden():
    """The second pass (docs/testing.md) runs after the README's command, with the variable the fixtures read."""
    lines = (REPO_ROOT / '.ci' / 'run').read_text().splitlines()
    readme_run = next(i for i, line in enumerate(lines) if line.startswith('python3 -m venv'))
    hidden = [i for i, line in enumerate(lines) if line.startswith(f'{HIDE_SHARED_ENV}=1 ')]
    assert hidden and hidden[0] > readme_run
    assert '-m "shared_data and not slow"' in lines[hidden[0]]
