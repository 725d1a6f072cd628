"""`pgolf` subcommands: one module each, exposing `register(subparsers)` (see harness.cli)."""
