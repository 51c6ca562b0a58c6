"""Reading the release manifest (``hub/manifest.yaml`` in the source tree) and checking folders against it."""
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from .errors import Mask3DError

STATUSES = ('published', 'not-yet-published')
_COMMIT = re.compile(r'[0-9a-f]{40}')
_SHA256 = re.compile(r'[0-9a-f]{64}')


@dataclass(frozen=True)
class Release:
    name: str
    repo_id: str
    status: str
    license: str
    init: str
    training_config: str
    training_data: str
    revision: Optional[str] = None
    sha256: Optional[str] = None
    base_model: Optional[str] = None   # Hub repo of the init weights, for the card's base_model
    metrics: Dict[str, Any] = field(default_factory=dict)
    # what an export must record (config.json['mask3d']) to be pushed as this release (`mask3d push --release`)
    data_sources: List[str] = field(default_factory=list)   # e.g. [scannet]; an export of synthetic rooms differs
    init_weights: Optional[str] = None                      # model.init of the run (None: trained from scratch)

    @property
    def published(self) -> bool:
        """Published means pinned: a Hub commit id and the sha256 of model.safetensors, both recorded here."""
        return self.status == 'published' and bool(self.pinned)

    @property
    def pinned(self) -> bool:
        return bool(self.revision and _COMMIT.fullmatch(str(self.revision)) and self.sha256
                    and _SHA256.fullmatch(str(self.sha256)))


def load_manifest(path: Union[str, os.PathLike]) -> List[Release]:
    path = Path(path)
    if not path.is_file():
        raise Mask3DError(f"{path}: manifest not found (run from the repository root or pass --manifest)")
    data = yaml.safe_load(path.read_text())
    org = data.get('org')
    releases = []
    for i, entry in enumerate(data.get('weights', [])):
        try:
            rel = Release(**entry)
        except TypeError as e:
            raise Mask3DError(f"{path}: entry {i} ({entry.get('name')}): {e}") from e
        if rel.status not in STATUSES:
            raise Mask3DError(f"{path}: {rel.name}: status must be one of {STATUSES}, got {rel.status!r}")
        if rel.status == 'published' and not rel.pinned:
            raise Mask3DError(f"{path}: {rel.name} is published but does not pin it: revision must be a 40-hex Hub "
                              f"commit id (got {rel.revision!r}) and sha256 a 64-hex digest (got {rel.sha256!r})")
        if org and rel.repo_id.split('/')[0] != org:
            raise Mask3DError(f"{path}: {rel.name}: repo_id {rel.repo_id} is not under org {org!r}; "
                              f"change org and every repo_id together")
        releases.append(rel)
    return releases


def find_release(releases: List[Release], repo_id: str) -> Optional[Release]:
    """The release planned for ``repo_id``; Hub repo ids are case-insensitive, so ``Mask3D/X`` is ``mask3d/X``."""
    wanted = repo_id.casefold()
    return next((r for r in releases if r.repo_id.casefold() == wanted), None)


def sha256_file(path: Union[str, os.PathLike]) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()
