"""Generate model cards (hub/cards/NAME.md) and the model zoo table (docs/model_zoo.md) from hub/manifest.yaml.

    python hub/make_cards.py           # write
    python hub/make_cards.py --check   # exit 1 if the generated files are out of date (CI runs this as a test)
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mask3d.export import MASK3D_OBJECTIVE, render_model_card  # noqa: E402
from mask3d.manifest import load_manifest  # noqa: E402

MANIFEST = ROOT / 'hub' / 'manifest.yaml'
CARDS = ROOT / 'hub' / 'cards'
ZOO = ROOT / 'docs' / 'model_zoo.md'


def generate() -> dict:
    releases = load_manifest(MANIFEST)
    files = {}
    for r in releases:
        files[CARDS / f'{r.name}.md'] = render_model_card(
            model_name=r.name, repo_id=r.repo_id, license=r.license,
            description=f'Mask3D ViT backbone `{r.name}` (init: {r.init}). Status: {r.status}.',
            training_data=r.training_data, training_config=f'# {r.training_config}', metrics=r.metrics,
            base_model=r.base_model, objective=MASK3D_OBJECTIVE, init=r.init, data_sources=r.data_sources)
    rows = ['# Model zoo', '', 'Generated from `hub/manifest.yaml` by `python hub/make_cards.py`; do not edit by hand.',
            '', '| weights | status | Hub repo | init | licence | training config | metrics |',
            '| --- | --- | --- | --- | --- | --- | --- |']
    for r in releases:
        metrics = ', '.join(f'{k} {v}' for k, v in r.metrics.items()) or '-'
        rows.append(f'| `{r.name}` | {r.status} | `{r.repo_id}` | {r.init} | {r.license} | `{r.training_config}` | '
                    f'{metrics} |')
    if not any(r.published for r in releases):
        rows += ['', 'No weights are published yet. Train your own (`mask3d pretrain`, see docs/pretraining.md) and '
                 "load them with `mask3d.create_model('local-dir:DIR', pretrained=True)`."]
    rows += ['', "`pretrained=True` loads only a release the manifest pins (Hub commit id + sha256 of "
             "`model.safetensors`); any other tag raises `WeightsNotPublishedError` without contacting the Hub. "
             "`timm.list_pretrained('mask3d*')` lists every planned tag (published or not), under both spellings "
             "(`mask3d_vit_base.scannet` = `mask3d_vit_base_patch16.scannet`).", '']
    files[ZOO] = '\n'.join(rows)
    return files


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--check', action='store_true')
    args = parser.parse_args()
    stale = []
    for path, text in generate().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print('out of date (run python hub/make_cards.py): ' + ', '.join(stale))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
