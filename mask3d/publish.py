"""Uploading an exported folder to the Hugging Face Hub after checking it against the release manifest."""
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

from .errors import InvalidWeightsFileError, Mask3DError
from .manifest import load_manifest, sha256_file
from .weights import SAFE_WEIGHTS_NAME

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


def push(
        folder: Union[str, os.PathLike],
        repo_id: str,
        *,
        manifest: Union[str, os.PathLike] = 'hub/manifest.yaml',
        dry_run: bool = False,
        private: bool = False,
        token: Optional[str] = None,
        print_fn=print,
) -> int:
    """Verify ``folder`` against the manifest entry of ``repo_id`` and upload it (unless ``dry_run``)."""
    files = check_export_folder(folder)
    entries = [r for r in load_manifest(manifest) if r.repo_id == repo_id]
    if not entries:
        raise Mask3DError(f"{manifest}: no entry with repo_id {repo_id}; add one before publishing")
    entry = entries[0]
    weights_sha = dict((n, s) for n, _, s in files)[SAFE_WEIGHTS_NAME]
    if entry.sha256 is None:
        problem = f"manifest has no sha256 for {entry.name}; record sha256: {weights_sha}"
    elif entry.sha256 != weights_sha:
        problem = f"{SAFE_WEIGHTS_NAME} sha256 {weights_sha} differs from the manifest's {entry.sha256} for {entry.name}"
    else:
        problem = ''
    print_fn(f"{'would upload' if dry_run else 'uploading'} to hf-hub:{repo_id} ({entry.name}):")
    for name, size, sha in files:
        print_fn(f"  {name:20s} {size:>12,d} B  sha256 {sha}")
    if problem:
        print_fn(f"verification FAILED: {problem}")
        if not dry_run:
            raise Mask3DError(f"not pushing: {problem}")
        return 1
    print_fn("verification OK: sha256 matches hub/manifest.yaml")
    if dry_run:
        return 0
    from huggingface_hub import HfApi
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, allow_patterns=list(UPLOADED_FILES),
                      commit_message=f'Add {entry.name} weights')
    print_fn(f"pushed: https://huggingface.co/{repo_id}")
    return 0
