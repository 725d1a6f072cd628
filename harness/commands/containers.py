"""`pgolf containers`: build and list the pinned images that isolate submissions."""
from __future__ import annotations

import argparse
import json
import sys
import time

from harness.errors import InputError

EPILOG = """\
examples:
  pgolf containers build --cpu            # Debian bookworm rootfs (debootstrap) + torch 2.13.0 CPU; skips if present
  pgolf containers build --cpu --force    # rebuild the base rootfs and the image
  pgolf containers build --cpu --relock   # re-resolve wheels and Debian packages into containers/cpu/image.lock.json
  pgolf containers build --gpu            # the 8xH100 image: run on a GPU host with registry access
  pgolf containers list                   # pgolf images on the engine; '*' marks the ones this checkout pins
  pgolf containers list --json
  pgolf containers prune                  # remove run containers left by a harness that died

The tag of each image is the digest of its recipe (Dockerfile + lock): `pgolf reproduce --runner
docker` runs the pinned CPU image unless --image says otherwise. Start an engine first with
`bash containers/ci-setup-docker.sh` (installs docker.io and debootstrap, starts dockerd).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "containers", help="build and list the pinned run images",
        description="Build and list the pinned container images that isolate submissions.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    b = sub.add_parser("build", help="build an image unless its pinned tag is present", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    which = b.add_mutually_exclusive_group()
    which.add_argument("--cpu", action="store_const", const="cpu", dest="kind", help="the CPU test image (default)")
    which.add_argument("--gpu", action="store_const", const="gpu", dest="kind", help="the 8xH100 reproduction image")
    b.add_argument("--force", action="store_true", help="rebuild even if the pinned tag is present")
    b.add_argument("--relock", action="store_true", help="(cpu) re-resolve wheels and Debian packages, rewrite the lock")
    b.set_defaults(func=run_build, kind="cpu")
    ls = sub.add_parser("list", help="list pgolf images on the engine", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ls.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    ls.set_defaults(func=run_list)
    pr = sub.add_parser("prune", help="remove run containers whose harness process is gone", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.set_defaults(func=run_prune)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


_T0 = time.monotonic()


def _log(line: str) -> None:
    """Build output; the harness's own steps ("$ ...") carry seconds since the command began."""
    if line.startswith("$ ") or line.startswith("warning:"):
        line = f"[+{time.monotonic() - _T0:.0f}s] {line}"
    print(line, flush=True)


def run_build(args) -> int:
    from harness import containers

    client = containers.docker_client()
    if args.kind == "gpu":
        if args.relock:
            raise InputError("--relock applies to the CPU image; the GPU lock is refreshed on a GPU host (see containers/gpu/Dockerfile)")
        tag = containers.build_gpu(client, _log, force=args.force)
    else:
        tag = containers.build_cpu(client, _log, force=args.force, relock=args.relock)
    print(tag)
    return 0


def run_list(args) -> int:
    from harness import containers

    rows = containers.list_images(containers.docker_client())
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"  {'TAG':<42} {'KIND':<5} {'ID':<20} {'SIZE MB':>8}  {'CREATED':<19}  TORCH")
    for r in rows:
        mark = "*" if r["pinned"] else " "
        print(f"{mark} {r['tag']:<42} {r['kind']:<5} {r['id']:<20} {r['size_mb']:>8}  {r['created']:<19}  {r['torch']}")
    if not rows:
        print("  (no pgolf images; build one with `pgolf containers build --cpu`)")
    return 0


def run_prune(args) -> int:
    from harness import containers
    from harness.runners.docker import remove_run_containers

    for name in remove_run_containers(containers.docker_client()):
        print(f"removed {name}")
    return 0
