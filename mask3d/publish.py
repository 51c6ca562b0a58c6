"""Uploading an exported folder to the Hugging Face Hub after checking it against the release manifest."""
import json
import os
import re
from pathlib import Path
from typing import List, Optional, Tuple, Union

from .errors import InvalidWeightsFileError, Mask3DError
from .licensing import license_conflict
from .manifest import load_manifest, sha256_file
from .loading import EXPORT_METADATA_KEY, SAFE_WEIGHTS_NAME

UPLOADED_FILES = (SAFE_WEIGHTS_NAME, 'config.json', 'README.md')


def check_export_folder(folder: Union[str, os.PathLike]) -> List[Tuple[str, int, str]]:
    """(name, bytes, sha256) of each file that would be uploaded; errors if one is missing or invalid."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    missing = [n for n in UPLOADED_FILES if not (folder / n).is_file()]
    if missing:
        raise InvalidWeightsFileError(f"{folder}: missing {', '.join(missing)} (make it with `mask3d export`)")
    try:
        with safe_open(str(folder / SAFE_WEIGHTS_NAME), framework='pt') as f:
            list(f.keys())
    except (SafetensorError, OSError) as e:
        raise InvalidWeightsFileError(f"{folder / SAFE_WEIGHTS_NAME}: not a valid safetensors file ({e})") from e
    return [(n, (folder / n).stat().st_size, sha256_file(folder / n)) for n in UPLOADED_FILES]


def card_license(folder: Path) -> Optional[str]:
    """The ``license:`` of the card's YAML front matter."""
    match = re.search(r'\A---\n(.*?)\n---', (folder / 'README.md').read_text(), re.S)
    found = re.search(r'^license:\s*(\S+)', match.group(1), re.M) if match else None
    return found.group(1) if found else None


def licence_problems(folder: Path, entry) -> List[str]:
    """Licence conflicts between the card, the manifest entry and the init weights the export records."""
    meta = json.loads((folder / 'config.json').read_text()).get(EXPORT_METADATA_KEY, {})
    card = card_license(folder)
    problems = []
    if card is None:
        problems.append('README.md has no license in its front matter')
    elif card != entry.license:
        problems.append(f'card licence {card} differs from the manifest\'s {entry.license} for {entry.name}')
    for licence, where in ((card, 'card'), (entry.license, 'manifest')):
        conflict = licence and license_conflict(licence, meta.get('init_license'))
        if conflict:
            problems.append(f"{where} {conflict} (init: {meta.get('init')})")
    return problems


def record_revision(manifest: Path, name: str, revision: str, published: bool) -> None:
    """Write the pushed commit id into the manifest entry (comments and layout kept)."""
    text = manifest.read_text()
    start = text.index(f'- name: {name}\n')
    end = text.find('\n  - name:', start)
    end = len(text) if end < 0 else end
    block = re.sub(r'^(\s+revision:).*$', rf'\1 {revision}', text[start:end], count=1, flags=re.M)
    if published:
        block = re.sub(r'^(\s+status:).*$', r'\1 published', block, count=1, flags=re.M)
    manifest.write_text(text[:start] + block + text[end:])


def push(
        folder: Union[str, os.PathLike],
        repo_id: str,
        *,
        manifest: Union[str, os.PathLike],
        dry_run: bool = False,
        private: bool = False,
        revision: Optional[str] = None,
        create_pr: bool = False,
        token: Optional[str] = None,
        print_fn=print,
) -> int:
    """Verify ``folder`` against the manifest entry of ``repo_id``, upload it and record the commit id.

    The token is ``token``, else huggingface_hub's own lookup (``HF_TOKEN``, then the saved ``hf auth login``).
    """
    folder, manifest = Path(folder), Path(manifest)
    files = check_export_folder(folder)
    entries = [r for r in load_manifest(manifest) if r.repo_id == repo_id]
    if not entries:
        raise Mask3DError(f"{manifest}: no entry with repo_id {repo_id}; add one before publishing")
    entry = entries[0]
    weights_sha = dict((n, s) for n, _, s in files)[SAFE_WEIGHTS_NAME]
    problems = licence_problems(folder, entry)
    if entry.sha256 is None:
        problems.append(f"manifest has no sha256 for {entry.name}; record sha256: {weights_sha}")
    elif entry.sha256 != weights_sha:
        problems.append(f"{SAFE_WEIGHTS_NAME} sha256 {weights_sha} differs from the manifest's {entry.sha256} "
                        f"for {entry.name}")
    target = f"hf-hub:{repo_id}" + (f"@{revision}" if revision else '') + (' (pull request)' if create_pr else '')
    print_fn(f"{'would upload' if dry_run else 'uploading'} to {target} ({entry.name}):")
    for name, size, sha in files:
        print_fn(f"  {name:20s} {size:>12,d} B  sha256 {sha}")
    if problems:
        print_fn(f"verification FAILED: {'; '.join(problems)}")
        if not dry_run:
            raise Mask3DError(f"not pushing: {'; '.join(problems)}")
        return 1
    print_fn(f"verification OK: sha256 matches {manifest}, licence {entry.license} fits the init weights")
    if dry_run:
        return 0
    from huggingface_hub import HfApi
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    if revision and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, allow_patterns=list(UPLOADED_FILES),
                               revision=revision, create_pr=create_pr, commit_message=f'Add {entry.name} weights')
    print_fn(f"pushed: commit {commit.oid} ({commit.pr_url or commit.commit_url})")
    published = not create_pr and revision in (None, 'main')
    from mask3d_cli.bundled import BUNDLED
    if os.access(manifest, os.W_OK) and not manifest.resolve().is_relative_to(BUNDLED):
        record_revision(manifest, entry.name, commit.oid, published)
        print_fn(f"recorded revision {commit.oid}{' and status published' if published else ''} in {manifest}")
    else:
        print_fn(f"record `revision: {commit.oid}` for {entry.name} in hub/manifest.yaml")
    return 0
