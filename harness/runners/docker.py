"""The Docker runner: one seed in a locked-down container of the pinned image.

Submissions are untrusted code. The container gets no network (`network_mode="none"`: only a
loopback interface), no capabilities, no privilege escalation, a read-only root filesystem with
a tmpfs /tmp, and runs as a non-root user. Its limits are real by default: at most 4,096
processes (`pids_limit`: a fork bomb meets EAGAIN, not the host's pid_max), a memory limit (90%
of the host's, no swap), and a work folder of bounded size (`work_size`, 8 GiB: an ext4
filesystem in a sparse image, loop-mounted by the harness; see `workdir.LoopBound`) — where the
harness cannot mount one (not root), the work folder is unbounded and the report says so. The
seed's work folder (a copy of the record, no links) is the only writable mount; the data
folder is mounted read-only. All are mounted at their host paths (DATA_PATH and TOKENIZER_PATH
too, where they lie outside the data folder), so the environment means the same inside and out.
pgolf's audit hook (`dataaccess`) is mounted read-only and put first on PYTHONPATH, reporting to a
socket in a read-only mount; the data and work folders are watched with inotify from outside.

Output arrives over the engine's attach stream (the engine keeps no log of it: `log_config`
none) and each line is stamped with the harness clock when it arrives, into a `capture.Capture`
(lines cut to a cap, kept on disk). The runner enforces `spec.timeout_s` itself: past it the
container is killed (SIGKILL: the budget is spent) and the outcome says TIMEOUT; the container's
init (`init=True`) takes every process of the run with it. Every container is labelled
`org.pgolf.run` and removed after collection; `remove_run_containers` sweeps any left by a
crashed harness.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from harness.errors import InputError
from harness.runners.base import RunOutcome, Runner, RunSpec, StampedLine, env_added
from harness.runners.capture import Capture, capture_path
from harness.runners.dataaccess import (CONTAINER_HOOK_DIR, CONTAINER_SOCKET_DIR, HOOK_DIR, DataWatch, data_roots,
                                        with_hook_env)
# The same fresh copy and the same before/after file snapshot as a local run.
from harness.runners.workdir import (LoopBound, Skipped, copy_record, copy_tree, loop_unavailable, parse_size,
                                     read_only_inputs, snapshot)

RUN_LABEL = "org.pgolf.run"
SANDBOX_UID = 10001  # the image's `pgolf` user; used when the harness itself runs as root
DEFAULT_PIDS_LIMIT = 4096
DEFAULT_WORK_SIZE = "8g"


def _host_memory_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def gpu_count(gpus: str | int | None) -> int | None:
    """The Docker device request's count for `gpus`: None (no GPU), -1 ("all"), or a count >= 1.
    Checked when the runner is made, so a bad value is a clear error before anything is copied.

    >>> gpu_count("all"), gpu_count("2"), gpu_count(None)
    (-1, 2, None)
    """
    if not gpus:
        return None
    if gpus == "all":
        return -1
    try:
        count = int(gpus)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise InputError(f"gpus must be 'all' or a count of at least 1, not {gpus!r}")
    return count


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            os.lchown(Path(dirpath) / name, uid, gid)


@dataclass
class DockerPrepared:
    spec: RunSpec
    create_kwargs: dict[str, Any]
    before: dict[str, tuple[int, int]]
    image_id: str
    skipped: list[Skipped] = field(default_factory=list)
    bound: LoopBound | None = None  # the size-bounded work folder, when there is one
    bound_why: str | None = None  # why there is none
    watch: DataWatch | None = None

    @property
    def mounted_work(self) -> Path:
        """The host folder the container writes to (the bound filesystem, else the work folder)."""
        return self.bound.mountpoint if self.bound else Path(self.spec.workdir).resolve()


@dataclass
class DockerHandle:
    prepared: DockerPrepared
    container: Any
    t0: float
    started_utc: str
    deadline: float
    capture: Capture
    stop_reason: str | None = None
    signals: list[tuple[str, float]] = field(default_factory=list)
    drained: bool = False
    exit_code: int | None = None
    wall_seconds: float | None = None
    reader_error: str | None = None
    collected: RunOutcome | None = None

    @property
    def lines(self):
        return self.capture.lines


class DockerRunner(Runner):
    """Runs `spec.command()` in a container of the pinned image (see module docstring).

    Options (all keyword): image (default: the CPU or, with gpus, the GPU image this checkout
    pins), gpus ("all" or a count; None = no GPU), mem_limit ("auto" = 90% of host memory, or a
    docker size string), pids_limit (4,096), work_size (the work folder's bound, "8g"; None for
    no bound), shm_size (default 2g, 16g with gpus), tmp_size (the /tmp tmpfs), stop_grace_s
    (SIGTERM to SIGKILL on an interrupt), share_reference_impl (off by default: mount pgolf's
    reference_impl read-only and put it on PYTHONPATH, for records that import it without
    carrying a copy), watch_data (the data-access channels), client (a docker SDK client).
    """

    name = "docker"

    def __init__(self, image: str | None = None, gpus: str | int | None = None, mem_limit: str | int = "auto",
                 pids_limit: int = DEFAULT_PIDS_LIMIT, work_size: str | int | None = DEFAULT_WORK_SIZE,
                 shm_size: str | None = None, tmp_size: str = "2g", stop_grace_s: float = 10.0,
                 share_reference_impl: bool = False, watch_data: bool = True, client: Any = None):
        self.image = image
        self.gpus = gpus
        self.gpu_count = gpu_count(gpus)
        self.mem_limit = int(_host_memory_bytes() * 0.9) if mem_limit == "auto" else mem_limit
        self.pids_limit = pids_limit
        self.work_size = parse_size(work_size) if work_size is not None else None
        # NCCL's intra-node transport lives in /dev/shm: 8 ranks need far more than a CPU run.
        self.shm_size = shm_size or ("16g" if gpus else "2g")
        self.tmp_size = tmp_size
        self.stop_grace_s = stop_grace_s
        self.share_reference_impl = share_reference_impl
        self.watch_data = watch_data
        self._client = client

    @property
    def client(self):
        if self._client is None:
            from harness.containers import docker_client

            self._client = docker_client()
        return self._client

    # ---- protocol ---------------------------------------------------------------------------

    def prepare(self, spec: RunSpec) -> DockerPrepared:
        import docker
        from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

        from harness.containers import default_image

        image = default_image(self.image, self.gpus)
        try:
            image_id = self.client.images.get(image).id
        except docker.errors.ImageNotFound:
            kind = "--gpu" if self.gpus else "--cpu"
            raise InputError(f"image {image} not present: build it with `pgolf containers build {kind}`") from None

        workdir = Path(spec.workdir).resolve()
        skipped = copy_record(Path(spec.record_dir), workdir)
        uid, gid = (SANDBOX_UID, SANDBOX_UID) if os.getuid() == 0 else (os.getuid(), os.getgid())
        bound, bound_why = self._bound_workdir(workdir, (uid, gid))
        work = bound.mountpoint if bound else workdir
        watch = None
        try:  # from here on a mount and a watch are held: any failure releases both
            if os.getuid() == 0:  # never run the submission as root: hand the copy to the sandbox user
                _chown_tree(work, uid, gid)

            mounts = [Mount(target=str(workdir), source=str(work), type="bind", read_only=False)]
            for path in read_only_inputs(spec, workdir):
                mounts.append(Mount(target=str(path), source=str(path), type="bind", read_only=True))
            env = dict(spec.env)
            if self.share_reference_impl:
                import reference_impl

                pkg = Path(reference_impl.__file__).resolve().parent
                mounts.append(Mount(target="/opt/pgolf/lib/reference_impl", source=str(pkg), type="bind", read_only=True))
                env["PYTHONPATH"] = "/opt/pgolf/lib" + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            if self.watch_data:
                watch = DataWatch(data_roots(spec.data_dir, spec.env), work, for_uid=uid)
                if watch.listener is not None:
                    env = with_hook_env(env, watch.env(inside_container=True))
                    mounts.append(Mount(target=CONTAINER_HOOK_DIR, source=str(HOOK_DIR), type="bind", read_only=True))
                    mounts.append(Mount(target=CONTAINER_SOCKET_DIR, source=str(watch.listener.dir), type="bind",
                                        read_only=True))

            kwargs: dict[str, Any] = dict(
                image=image_id, command=spec.command(), working_dir=str(workdir), environment=env,
                user=f"{uid}:{gid}", network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"],
                read_only=True, tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.tmp_size},mode=1777"},
                pids_limit=self.pids_limit, mem_limit=self.mem_limit, memswap_limit=self.mem_limit,
                shm_size=self.shm_size, init=True, mounts=mounts, hostname="pgolf-run",
                extra_hosts={"pgolf-run": "127.0.0.1"},  # torchrun resolves its own hostname; no DNS here
                log_config=LogConfig(type="none"),  # output is read from the attach stream; the engine keeps none
                name=f"pgolf-run-{spec.seed}-{os.getpid()}-{time.monotonic_ns() % 10**9}",
                labels={RUN_LABEL: "1", "org.pgolf.seed": str(spec.seed), "org.pgolf.record": str(spec.record_dir),
                        "org.pgolf.image-tag": image, "org.pgolf.harness-pid": str(os.getpid())},
            )
            if self.gpu_count:
                kwargs["device_requests"] = [DeviceRequest(count=self.gpu_count, capabilities=[["gpu"]])]
                # NVIDIA's advice for PyTorch containers: pinned memory must not hit a memlock limit.
                kwargs["ulimits"] = [Ulimit(name="memlock", soft=-1, hard=-1), Ulimit(name="stack", soft=67108864, hard=67108864)]
            return DockerPrepared(spec=spec, create_kwargs=kwargs, before=snapshot(work), image_id=image_id,
                                  skipped=skipped, bound=bound, bound_why=bound_why, watch=watch)
        except BaseException:
            if watch is not None:
                watch.stop()
            if bound is not None:
                bound.release()
            raise

    def _bound_workdir(self, workdir: Path, owner: tuple[int, int]) -> tuple[LoopBound | None, str | None]:
        """Move the fresh copy onto a size-bounded filesystem; (None, why) where that cannot be."""
        if self.work_size is None:
            return None, "no bound asked for (work_size=None)"
        why = loop_unavailable()
        if why:
            return None, why
        bound = LoopBound(workdir.with_name(f".{workdir.name}.img"), workdir.with_name(f".{workdir.name}.bound"),
                          self.work_size, owner)
        try:
            bound.create()
            copy_tree(workdir, bound.mountpoint, max_bytes=None)
        except OSError as e:
            bound.release()
            return None, str(e)
        except BaseException:
            bound.release()
            raise
        return bound, None

    def start(self, prepared: DockerPrepared) -> DockerHandle:
        try:
            container = self.client.containers.create(**prepared.create_kwargs)
        except BaseException:
            self._release(prepared)
            raise
        try:
            # Attach before start so that no early line is lost.
            frames = container.attach(stdout=True, stderr=True, stream=True, logs=False, demux=True)
            capture = Capture(capture_path(prepared.spec))
            t0 = time.monotonic()
            started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if prepared.watch:
                prepared.watch.start(t0)
            container.start()
        except BaseException:
            container.remove(force=True)
            self._release(prepared)
            raise
        handle = DockerHandle(prepared=prepared, container=container, t0=t0, started_utc=started,
                              deadline=t0 + prepared.spec.timeout_s, capture=capture)
        threading.Thread(target=self._read, args=(handle, frames), daemon=True,
                         name=f"pgolf-docker-reader-{prepared.spec.seed}").start()
        return handle

    def stream(self, handle: DockerHandle) -> Iterator[StampedLine]:
        cap = handle.capture
        while not cap.done:
            remaining = handle.deadline - time.monotonic()
            if remaining <= 0 and handle.stop_reason is None:
                self.stop(handle, "timeout")
            line = cap.take(max(0.05, min(remaining, 0.5)))
            if line is not None:
                yield line
        handle.drained = True

    def stop(self, handle: DockerHandle, reason: str) -> None:
        import docker

        if handle.stop_reason is not None:
            return
        handle.stop_reason = reason
        t = round(time.monotonic() - handle.t0, 3)
        try:
            if reason == "timeout":
                handle.signals.append(("SIGKILL", t))
                handle.container.kill()
            else:
                handle.signals.append(("SIGTERM", t))
                handle.container.stop(timeout=int(self.stop_grace_s))
        except docker.errors.APIError:
            pass  # already exited (409) or gone (404): nothing left to stop

    def _release(self, prepared: DockerPrepared) -> None:
        if prepared.watch:
            prepared.watch.stop()
            prepared.watch = None
        if prepared.bound:
            prepared.bound.release()

    def collect(self, handle: DockerHandle) -> RunOutcome:
        import requests

        if handle.collected is not None:
            return handle.collected
        prepared = handle.prepared
        try:
            for _ in self.stream(handle):
                pass
            while handle.exit_code is None:
                remaining = handle.deadline - time.monotonic()
                try:  # the output can close before the process ends (it may close its stdio)
                    result = handle.container.wait(timeout=max(1, min(remaining, 5)) if handle.stop_reason is None else 60)
                    handle.exit_code = int(result.get("StatusCode", -1))
                except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
                    if time.monotonic() >= handle.deadline:
                        self.stop(handle, "timeout")
            handle.wall_seconds = time.monotonic() - handle.t0
        finally:
            try:
                handle.container.remove(force=True)
            except Exception:  # noqa: BLE001 - removal is best effort; remove_run_containers sweeps
                pass
            handle.capture.lines.close()
            if prepared.watch:
                prepared.watch.stop()
        spec = prepared.spec
        work = prepared.mounted_work
        bound_usage = None
        links_written: list[str] = []
        try:
            after = snapshot(work)
            changed = sorted(p for p, st in after.items() if prepared.before.get(p) != st)
            if prepared.bound:
                bound_usage = prepared.bound.usage()
                # What the run wrote comes back to the work folder: files and folders, never links.
                links_written = [s.rel for s in copy_tree(work, Path(spec.workdir).resolve(), max_bytes=None,
                                                          only=set(changed)) if s.kind == "link"]
        finally:  # whatever the copy-back met, the loop mount and its image go
            if prepared.bound:
                prepared.bound.release()
        kw = prepared.create_kwargs
        handle.collected = RunOutcome(
            seed=spec.seed, exit_code=handle.exit_code, timed_out=handle.stop_reason == "timeout",
            stop_reason=handle.stop_reason, started_utc=handle.started_utc, wall_seconds=handle.wall_seconds,
            lines=handle.capture.lines, files={p: st[0] for p, st in sorted(after.items())}, runner=self.name,
            details={"command": kw["command"], "image": kw["image"], "image_tag": kw["labels"]["org.pgolf.image-tag"],
                     "container": kw["name"], "user": kw["user"], "network": "none",
                     "files_written": changed, "reader_error": handle.reader_error,
                     "timeout_s": spec.timeout_s, "signals": handle.signals,
                     "started_monotonic": handle.t0,  # CLOCK_MONOTONIC is system-wide: comparable across processes
                     "output": handle.capture.lines.summary(),
                     "links_not_copied": [s.to_dict() for s in prepared.skipped],
                     "links_written_not_copied_back": links_written,
                     "env_added": env_added(kw["environment"], spec.env),
                     "limits": {"pids": kw["pids_limit"], "memory_bytes": kw["mem_limit"],
                                "tmp": self.tmp_size, "shm": self.shm_size,
                                "work_bytes": prepared.bound.size if prepared.bound else None},
                     "work_bound": bound_usage, "work_bound_missing": prepared.bound_why,
                     "isolation": {"runner": "docker", "isolated": True, "processes": "container (pid namespace, init)",
                                   "network": "none", "root_fs": "read-only", "data": "read-only",
                                   "capabilities": "none", "user": kw["user"]},
                     "data_access": prepared.watch.summary() if prepared.watch else None},
        )
        return handle.collected

    # ---- output ---------------------------------------------------------------------------

    def _read(self, handle: DockerHandle, frames) -> None:
        """Feed the attach stream to the capture, stamping each frame on arrival (in a thread)."""
        try:
            for out, err in frames:
                now = time.monotonic() - handle.t0
                for name, chunk in (("stdout", out), ("stderr", err)):
                    if chunk:
                        handle.capture.feed(name, chunk, now)
        except Exception as e:  # noqa: BLE001 - a broken stream ends the output, never the harness
            handle.reader_error = f"{type(e).__name__}: {e}"
        finally:
            now = time.monotonic() - handle.t0
            for name in ("stdout", "stderr"):
                handle.capture.end(name, now)


def unavailable(image: str | None = None, gpus: str | int | None = None, client: Any = None) -> str | None:
    """Why the Docker runner cannot run here (no engine answers, or the image it would run is not
    built), or None when it can."""
    from harness.containers import default_image, docker_client, image_present

    tag = default_image(image, gpus)
    try:
        if client is None:
            client = docker_client(timeout=10)  # pings
        else:
            client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means "no engine reachable"
        return f"no Docker engine answers ({type(e).__name__})"
    try:
        present = image_present(client, tag)
    except Exception:  # noqa: BLE001 - an engine that cannot list images cannot run one
        present = False
    if not present:
        return f"the image {tag} is not built (`pgolf containers build {'--gpu' if gpus else '--cpu'}`)"
    return None


def remove_run_containers(client, only_dead_harnesses: bool = True) -> list[str]:
    """Remove containers labelled as pgolf runs (by default only those whose harness is gone)."""
    removed = []
    for c in client.containers.list(all=True, filters={"label": RUN_LABEL}):
        pid = int(c.labels.get("org.pgolf.harness-pid", "0") or 0)
        if only_dead_harnesses and pid and Path(f"/proc/{pid}").exists():
            continue
        c.remove(force=True)
        removed.append(c.name)
    return removed
