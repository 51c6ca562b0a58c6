"""hub/manifest.yaml is the single source of truth: default_cfgs (Hub repos) and the generated docs follow it."""
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from mask3d.errors import Mask3DError
from mask3d.manifest import load_manifest
from mask3d.models.mask3d_vit import default_cfgs
import yaml

MANIFEST = REPO_ROOT / 'hub' / 'manifest.yaml'


def _cfgs():
    return {f'{arch}.{tag}': cfg for arch, d in default_cfgs.items() for tag, cfg in d.cfgs.items()}


def test_manifest_and_default_cfgs_agree():
    releases = {r.name: r for r in load_manifest(MANIFEST)}
    org = yaml.safe_load(MANIFEST.read_text())['org']
    cfgs = {k: v for k, v in _cfgs().items() if '_patch16.' in k}  # the short aliases share these entries
    assert set(releases) == set(cfgs)
    for name, rel in releases.items():
        assert rel.repo_id == cfgs[name].hf_hub_id
        assert rel.repo_id.split('/')[0] == org
        assert rel.license == cfgs[name].license
        config_file = rel.training_config.split()[0]
        assert (REPO_ROOT / config_file).is_file(), config_file


def test_every_repo_id_is_under_the_manifest_org(tmp_path):
    text = MANIFEST.read_text()
    moved = tmp_path / 'manifest.yaml'
    moved.write_text(text.replace('\norg: mask3d\n', '\norg: another-org\n', 1))
    with pytest.raises(Mask3DError, match="mask3d_vit_tiny_patch16.scannet: repo_id mask3d/.* not under org 'anoth"):
        load_manifest(moved)


def test_no_invented_urls_in_cfgs():
    assert all(cfg.origin_url is None for cfg in _cfgs().values())


def test_generated_cards_and_zoo_are_up_to_date():
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'hub' / 'make_cards.py'), '--check'],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
