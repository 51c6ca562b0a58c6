"""``mask3d models``, ``push`` and ``export``: the subcommands that need mask3d itself (timm registry, Hub client)."""
from pathlib import Path


def run_models(args) -> int:
    """Each architecture with its tags, the Hub repo the manifest names, and the manifest's status."""
    import timm
    from huggingface_hub import try_to_load_from_cache
    from mask3d_resources import manifest_path

    from .. import list_models
    from ..manifest import load_manifest
    from ..loading import SAFE_WEIGHTS_NAME

    releases = {r.repo_id: r for r in load_manifest(manifest_path())} if manifest_path().is_file() else {}
    status = {repo: r.status for repo, r in releases.items()}
    print(f"{'model':28s}  weights (tag: manifest status, hub repo[, cached])")
    for arch in list_models(args.filter):
        parts = []
        for name, cfg in timm.models.get_arch_pretrained_cfgs(arch).items():
            release = releases.get(cfg.hf_hub_id)
            cached = release is not None and release.published and isinstance(  # the pinned commit only
                try_to_load_from_cache(cfg.hf_hub_id, SAFE_WEIGHTS_NAME, revision=release.revision), str)
            parts.append(f"{name.split('.', 1)[1]}: {status.get(cfg.hf_hub_id, 'no manifest entry')} "
                         f"({cfg.hf_hub_id or 'no hub repo'}{', cached' if cached else ''})")
        print(f"{arch:28s}  {', '.join(parts) or '-'}")
    print("pretrained=True loads only a release hub/manifest.yaml pins (Hub commit + sha256); any other tag raises "
          "WeightsNotPublishedError without contacting the Hub.")
    return 0


def run_push(args) -> int:
    from mask3d_resources import manifest_path

    from ..publish import push
    release = args.release or args.manifest is not None  # --manifest names the release manifest to pin
    return push(args.folder, args.repo_id, manifest=Path(args.manifest) if args.manifest else manifest_path(),
                release=release, dry_run=args.dry_run, private=args.private or None, revision=args.revision,
                create_pr=args.create_pr)


def run_export(args) -> int:
    """``mask3d export``: the run's encoder as a Hub folder; ``--license`` states the weights' licence."""
    import json

    from ..export import restate_license
    from ..training.pretrain.engine import export_run

    out = export_run(args.run_dir, args.out, checkpoint=args.checkpoint)
    if args.license:
        restate_license(out, args.license)
    print(json.dumps({'export': str(out), 'load': f"mask3d.create_model('local-dir:{out}', pretrained=True)",
                      'push': f"mask3d push {out} --repo-id YOUR_NAME/REPO"}))
    return 0
