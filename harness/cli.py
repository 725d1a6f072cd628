"""`pgolf`: the command line. Each subcommand lives in `harness.commands.<name>` and exposes
`register(subparsers)`, which adds its parser and sets `func(args) -> int` as the default.

Exit codes everywhere (design.md): 0 nothing failed, 1 a rule failed, 2 the input or the call
was unusable (an `InputError`, a usage error).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from harness import __version__
from harness.errors import InputError

# Order is the order shown in --help.
COMMANDS = ("demo", "check", "audit", "reproduce", "queue", "gate", "data", "containers", "probe")

EPILOG = """\
examples:
  pgolf demo                                   # the whole product on a tiny built-in record (CPU, minutes)
  pgolf check records/track_10min_16mb/2026-04-09_A2_Muon097_3Seed
  pgolf check --all ../shared/corpus/records   # one row per record
  pgolf audit path/to/record --format sarif > audit.sarif
  pgolf reproduce path/to/record --seeds 1337,42,2025 --out repro/
  pgolf queue records/track_10min_16mb/2026-04-* --out /shared/pgolf/q   # records x seeds as Slurm jobs

exit codes: 0 nothing failed, 1 a rule failed, 2 unusable input or call.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgolf",
        description="Audit and reproduce Parameter Golf submissions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pgolf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        modname = f"harness.commands.{name}"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # that command is not part of this build yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"pgolf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pgolf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
