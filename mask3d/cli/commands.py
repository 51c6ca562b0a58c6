"""``mask3d models`` and ``mask3d push``: the subcommands that need mask3d itself (timm registry, Hub client)."""
from pathlib import Path


def run_models(args) -> int:
    """Each architecture with its tags, the Hub repo the manifest names, and the manifest's status."""
    import timm
    from huggingface_hub import try_to_load_from_cache
    from mask3d_cli.bundled import manifest_path

    from .. import list_models
    from ..manifest import load_manifest
    from ..loading import SAFE_WEIGHTS_NAME

    status = {r.repo_id: r.status for r in load_manifest(manifest_path())} if manifest_path().is_file() else {}
    print(f"{'model':28s}  weights (tag: manifest status, hub repo[, cached])")
    for arch in list_models(args.filter):
        parts = []
        for name, cfg in timm.models.get_arch_pretrained_cfgs(arch).items():
            cached = isinstance(try_to_load_from_cache(cfg.hf_hub_id, SAFE_WEIGHTS_NAME), str) if cfg.hf_hub_id else 0
            parts.append(f"{name.split('.', 1)[1]}: {status.get(cfg.hf_hub_id, 'no manifest entry')} "
                         f"({cfg.hf_hub_id or 'no hub repo'}{', cached' if cached else ''})")
        print(f"{arch:28s}  {', '.join(parts) or '-'}")
    print("pretrained=True asks the Hub; a repo that does not exist yet raises WeightsNotPublishedError.")
    return 0


def run_push(args) -> int:
    from mask3d_cli.bundled import manifest_path

    from ..publish import push
    return push(args.folder, args.repo_id, manifest=Path(args.manifest) if args.manifest else manifest_path(),
                dry_run=args.dry_run, private=args.private, revision=args.revision, create_pr=args.create_pr)
