"""Runners: where a seed runs (see `base` for the protocol). `make_runner` picks one by name.

Runner modules are imported lazily: the Docker SDK is only needed when the docker runner is
asked for, and a runner that is not part of this build yet gives a clear error, not an import
failure at start-up.
"""
from __future__ import annotations

import importlib
from typing import Any

from harness.errors import InputError
from harness.runners.base import Runner, RunOutcome, RunSpec, StampedLine

RUNNERS = {
    "local": ("harness.runners.local", "LocalRunner"),
    "docker": ("harness.runners.docker", "DockerRunner"),
}

__all__ = ["RUNNERS", "Runner", "RunOutcome", "RunSpec", "StampedLine", "choose_runner", "make_runner"]


def make_runner(name: str, **opts: Any) -> Runner:
    """The runner registered as `name`, constructed with `opts` (e.g. image=..., gpus="all").

    >>> make_runner("docker", image="pgolf-cpu:0123456789ab").name  # doctest: +SKIP
    'docker'
    """
    if name not in RUNNERS:
        raise InputError(f"unknown runner {name!r}; choose one of: {', '.join(sorted(RUNNERS))}")
    modname, clsname = RUNNERS[name]
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name == modname:
            raise InputError(f"runner {name!r} is not part of this build ({modname} missing)") from None
        raise
    return getattr(module, clsname)(**opts)


def choose_runner(requested: str | None = "auto", image: str | None = None, gpus: str | int | None = None,
                  client: Any = None) -> tuple[str, str]:
    """(runner name, why): the Docker runner whenever an engine answers and the image it would run
    is present (it isolates; the local runner does not), else the local runner, saying what was
    missing. An explicit "local" or "docker" is taken as asked.

    >>> choose_runner("local")
    ('local', 'asked for with --runner local')
    """
    if requested in RUNNERS:
        return requested, f"asked for with --runner {requested}"
    if requested not in (None, "auto"):
        raise InputError(f"unknown runner {requested!r}; choose one of: auto, {', '.join(sorted(RUNNERS))}")
    from harness.containers import default_image
    from harness.runners.docker import unavailable

    why = unavailable(image, gpus, client)
    if why:
        return "local", f"{why}, so the local runner, which does not isolate"
    return "docker", f"a Docker engine answers and the pinned image {default_image(image, gpus)} is present"
