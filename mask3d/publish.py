"""Publishing exports on the Hugging Face Hub: anyone's own (``push_to_hub``), and the maintainers' releases.

``push_to_hub(model_or_folder, 'you/name')`` (and ``mask3d push DIR --repo-id you/name``) uploads any export to any
repo the token may write, without touching the release manifest: the folder is checked (weights readable and finite,
sha256 as recorded) and its card is re-rendered with the real ``hf-hub:`` id. Repo ids the manifest plans for
official names are refused there; only the release path (``mask3d push DIR --repo-id ORG/NAME --release``) pushes
to them, and only an export whose recorded provenance matches the release (architecture, init, data sources, the
Mask3D objective, licence, sha256). It then pins the release in the manifest: commit id, sha256 and status.
"""
import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .errors import InvalidWeightsFileError, Mask3DError
from .licensing import license_conflict
from .loading import EXPORT_METADATA_KEY, SAFE_WEIGHTS_NAME, check_sha256, read_export_config
from .manifest import find_release, load_manifest, sha256_file

UPLOADED_FILES = (SAFE_WEIGHTS_NAME, 'config.json', 'README.md')


def check_export_folder(folder: Union[str, os.PathLike]) -> List[Tuple[str, int, str]]:
    """(name, bytes, sha256) of the weights and config; errors if one is missing, unreadable or non-finite."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .finite import check_finite_tensors

    folder = Path(folder)
    missing = [n for n in (SAFE_WEIGHTS_NAME, 'config.json') if not (folder / n).is_file()]
    if missing:
        raise InvalidWeightsFileError(f"{folder}: missing {', '.join(missing)} (make it with `mask3d export` or "
                                      f"mask3d.save_pretrained)")
    read_export_config(folder / 'config.json')
    weights = folder / SAFE_WEIGHTS_NAME
    check_sha256(weights, _record(folder).get('sha256'), str(folder / 'config.json'), str(weights))
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise InvalidWeightsFileError(f"{weights}: not a valid safetensors file ({e})") from e
    check_finite_tensors(tensors, str(weights))
    return [(n, (folder / n).stat().st_size, sha256_file(folder / n)) for n in (SAFE_WEIGHTS_NAME, 'config.json')]


def _record(folder: Path) -> Dict[str, Any]:
    record = read_export_config(folder / 'config.json').get(EXPORT_METADATA_KEY, {})
    return record if isinstance(record, dict) else {}


def card_for_repo(folder: Path, repo_id: str) -> Tuple[bytes, str]:
    """The card to upload and why: mask3d's card re-rendered with ``hf-hub:repo_id``, or the user's own, kept."""
    from .export import card_from_config

    config = read_export_config(folder / 'config.json')
    existing = folder / 'README.md'
    local = str(card_from_config(config))
    if existing.is_file() and existing.read_text() not in (local, str(card_from_config(config, repo_id))):
        return existing.read_bytes(), 'README.md as it is (edited by hand: usage lines not rewritten)'
    return str(card_from_config(config, repo_id)).encode(), f'README.md rendered from config.json for hf-hub:{repo_id}'


def release_problems(folder: Path, entry) -> List[str]:
    """Why ``folder`` may not be published as the manifest release ``entry`` (empty: it may)."""
    from .export import MASK3D_OBJECTIVE
    from .models.mask3d_vit import stock_timm_architecture

    record = _record(folder)
    problems = []
    if record.get('objective') != MASK3D_OBJECTIVE:
        problems.append(f"the export records no Mask3D pre-training run (objective {record.get('objective')!r})")
    arch = entry.name.split('.')[0]
    if stock_timm_architecture(str(record.get('architecture'))) != stock_timm_architecture(arch):
        problems.append(f"architecture {record.get('architecture')} is not {arch}")
    init = record.get('init')
    wanted_init = entry.init_weights or 'scratch'
    if init != wanted_init:
        problems.append(f"init {init!r} is not the release's {wanted_init!r}")
    if sorted(record.get('data_sources') or []) != sorted(entry.data_sources):
        problems.append(f"trained on {record.get('data_sources') or 'unrecorded data'} "
                        f"({record.get('training_data', 'not recorded')}), the release needs {entry.data_sources}")
    if record.get('license') != entry.license:
        problems.append(f"licence {record.get('license')!r} is not the release's {entry.license!r} "
                        f"(state it with `mask3d export ... --license {entry.license}`)")
    conflict = license_conflict(entry.license, record.get('init_license'))
    if conflict:
        problems.append(f"manifest {conflict} (init: {init})")
    sha = sha256_file(folder / SAFE_WEIGHTS_NAME)
    if entry.sha256 and entry.sha256 != sha:
        problems.append(f"{SAFE_WEIGHTS_NAME} sha256 {sha} differs from the manifest's {entry.sha256}")
    return problems


def record_release(manifest: Path, name: str, revision: str, sha256: str, published: bool) -> None:
    """Pin the pushed commit id and file sha256 in the manifest entry (comments and layout kept)."""
    text = manifest.read_text()
    start = text.index(f'- name: {name}\n')
    end = text.find('\n  - name:', start)
    end = len(text) if end < 0 else end
    block = re.sub(r'^(\s+revision:).*$', rf'\g<1> {revision}', text[start:end], count=1, flags=re.M)
    block = re.sub(r'^(\s+sha256:).*$', rf'\g<1> {sha256}', block, count=1, flags=re.M)
    if published:
        block = re.sub(r'^(\s+status:).*$', r'\g<1> published', block, count=1, flags=re.M)
    manifest.write_text(text[:start] + block + text[end:])


def _upload(folder: Path, repo_id: str, card: bytes, *, private: Optional[bool], revision: Optional[str],
            create_pr: bool, token: Optional[str], commit_message: str):
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    if revision and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=SAFE_WEIGHTS_NAME, path_or_fileobj=str(folder / SAFE_WEIGHTS_NAME)),
                  CommitOperationAdd(path_in_repo='config.json', path_or_fileobj=str(folder / 'config.json')),
                  CommitOperationAdd(path_in_repo='README.md', path_or_fileobj=card)]
    return api.create_commit(repo_id, operations=operations, commit_message=commit_message, revision=revision,
                             create_pr=create_pr)


def _check_repo_id(repo_id: str) -> None:
    """``NAME`` (your namespace) or ``ORG/NAME`` as the Hub allows, checked before anything is printed or sent."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise Mask3DError(f"--repo-id {repo_id!r}: not a valid Hub repo id ({str(e).splitlines()[0]}); "
                          f"write you/name") from e


@contextlib.contextmanager
def _hub_errors(repo_id: str):
    """The Hub refusing or unreachable during an upload: one line naming the repo, not a traceback."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    try:
        yield
    except OfflineModeIsEnabled as e:
        raise Mask3DError(f"cannot push to hf-hub:{repo_id}: HF_HUB_OFFLINE is set; unset it on a machine with "
                          f"network") from e
    except HfHubHTTPError as e:
        status = getattr(e.response, 'status_code', None)
        hint = ' (log in with `hf auth login` or pass token=, with write access to the repo)' \
            if status in (401, 403) else ''
        raise Mask3DError(f"cannot push to hf-hub:{repo_id}: the Hub answered {status or 'an error'}: "
                          f"{str(e).splitlines()[0]}{hint}") from e
    except (ConnectionError, OSError) as e:
        raise Mask3DError(f"cannot push to hf-hub:{repo_id}: the Hub cannot be reached "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e


def _planned_entry(repo_id: str, manifest: Path):
    return find_release(load_manifest(manifest), repo_id) if manifest.is_file() else None


def push(folder: Union[str, os.PathLike], repo_id: str, **kwargs: Any) -> int:
    """``mask3d push``: :func:`publish` as an exit status (1: dry run found problems)."""
    return publish(folder, repo_id, **kwargs)[0]


def publish(
        folder: Union[str, os.PathLike],
        repo_id: str,
        *,
        manifest: Optional[Union[str, os.PathLike]] = None,
        release: bool = False,
        dry_run: bool = False,
        private: Optional[bool] = None,
        revision: Optional[str] = None,
        create_pr: bool = False,
        token: Optional[str] = None,
        commit_message: Optional[str] = None,
        print_fn=print,
) -> Tuple[int, Any]:
    """Check ``folder`` and upload it to ``repo_id``; ``release=True``: a manifest release, pinned after the push.

    Returns (exit status, huggingface_hub ``CommitInfo`` or None for a dry run).

    The token is ``token``, else huggingface_hub's own lookup (``HF_TOKEN``, then the saved ``hf auth login``).
    """
    from mask3d_resources import PACKAGE_FOLDER, manifest_path

    folder = Path(folder)
    manifest = Path(manifest) if manifest else manifest_path()
    _check_repo_id(repo_id)
    files = check_export_folder(folder)
    entry = _planned_entry(repo_id, manifest)
    if release and entry is None:
        raise Mask3DError(f"{manifest}: no entry with repo_id {repo_id}; a release needs one (docs/publishing.md)")
    if not release and entry is not None:
        raise Mask3DError(f"{repo_id} is reserved for the official release {entry.name} in {manifest}; push your "
                          f"export to a repo of your own (--repo-id you/name); maintainers publish with --release")
    card, card_note = card_for_repo(folder, repo_id)
    problems = release_problems(folder, entry) if release else []
    target = f"hf-hub:{repo_id}" + (f"@{revision}" if revision else '') + (' (pull request)' if create_pr else '')
    print_fn(f"{'would upload' if dry_run else 'uploading'} to {target}" + (f" ({entry.name})" if entry else '') + ':')
    for name, size, sha in files:
        print_fn(f"  {name:20s} {size:>12,d} B  sha256 {sha}")
    print_fn(f"  {card_note}")
    if problems:
        print_fn(f"verification FAILED: {'; '.join(problems)}")
        if not dry_run:
            raise Mask3DError(f"not pushing {folder} as {entry.name}: {'; '.join(problems)}")
        return 1, None
    print_fn('verification OK: weights finite, sha256 as recorded' +
             (f', provenance matches {entry.name} in {manifest}' if release else ''))
    if dry_run:
        return 0, None
    message = commit_message or f"Add {entry.name if entry else folder.name} weights (mask3d)"
    with _hub_errors(repo_id):
        commit = _upload(folder, repo_id, card, private=private, revision=revision, create_pr=create_pr,
                         token=token, commit_message=message)
    print_fn(f"pushed: commit {commit.oid} ({commit.pr_url or commit.commit_url}); load it with "
             f"mask3d.create_model('hf-hub:{repo_id}@{commit.oid}', pretrained=True)")
    if release:
        _pin(manifest, entry, commit.oid, files[0][2], not create_pr and revision in (None, 'main'), PACKAGE_FOLDER,
             print_fn)
    return 0, commit


def _pin(manifest: Path, entry, oid: str, sha: str, published: bool, installed: Path, print_fn) -> None:
    if os.access(manifest, os.W_OK) and not manifest.resolve().is_relative_to(installed):
        record_release(manifest, entry.name, oid, sha, published)
        print_fn(f"recorded revision {oid}, sha256 {sha}{' and status published' if published else ''} in {manifest}")
    else:
        print_fn(f"record `revision: {oid}` and `sha256: {sha}` for {entry.name} in hub/manifest.yaml")


def push_to_hub(
        model_or_export_dir: Any,
        repo_id: str,
        *,
        private: Optional[bool] = None,
        revision: Optional[str] = None,
        create_pr: bool = False,
        token: Optional[str] = None,
        commit_message: Optional[str] = None,
        license: Optional[str] = None,
        print_fn=print,
):
    """Upload a model (saved first with :func:`mask3d.save_pretrained`) or an export folder to your Hub repo.

    ``private``, ``revision`` (a branch, created if missing), ``create_pr`` and ``token`` mean what they mean in
    ``huggingface_hub.HfApi``. ``license`` is stated for a model saved here (an export folder keeps its own).
    Returns huggingface_hub's ``CommitInfo`` (``.oid``, ``.commit_url``, ``.pr_url``).
    """
    import torch

    if isinstance(model_or_export_dir, torch.nn.Module):
        from .export import save_pretrained
        with tempfile.TemporaryDirectory(prefix='mask3d-push-') as tmp:
            folder = save_pretrained(model_or_export_dir, Path(tmp) / 'export', license=license)
            return publish(folder, repo_id, private=private, revision=revision, create_pr=create_pr, token=token,
                           commit_message=commit_message, print_fn=print_fn)[1]
    if license is not None:
        raise Mask3DError("push_to_hub(folder, license=...): an export folder keeps the licence it was saved with; "
                          "set it with `mask3d export ... --license` or save_pretrained(..., license=...)")
    return publish(model_or_export_dir, repo_id, private=private, revision=revision, create_pr=create_pr,
                   token=token, commit_message=commit_message, print_fn=print_fn)[1]
