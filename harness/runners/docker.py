"""The Docker runner: one seed in a locked-down container of the pinned image.

Submissions are untrusted code. The container gets no network (`network_mode="none"`: only a
loopback interface), no capabilities, no privilege escalation, a read-only root filesystem with
a tmpfs /tmp, pid and memory limits, and runs as a non-root user. The seed's work directory (a
copy of the record folder) is the only writable mount; the data folder is mounted read-only.
All are mounted at their host paths (DATA_PATH and TOKENIZER_PATH too, where they lie outside
the data folder), so the environment means the same inside and out and nothing is rewritten.

Output arrives over the engine's attach stream and each line is stamped with the harness clock
when it arrives (never parsed from the text). The runner enforces `spec.timeout_s` itself: past
it the container is killed (SIGKILL: the budget is spent) and the outcome says TIMEOUT. Every
container is labelled `org.pgolf.run` and removed after collection; `remove_run_containers`
sweeps any left by a crashed harness.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from harness.errors import InputError
from harness.runners.base import RunOutcome, Runner, RunSpec, StampedLine
# The same fresh copy and the same before/after file snapshot as a local run.
from harness.runners.local import copy_record, snapshot

RUN_LABEL = "org.pgolf.run"
SANDBOX_UID = 10001  # the image's `pgolf` user; used when the harness itself runs as root
_END = object()


def _host_memory_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def read_only_inputs(spec: RunSpec, workdir: Path) -> list[Path]:
    """What to mount read-only: the data folder, plus DATA_PATH and TOKENIZER_PATH where they
    lie outside it (a tokenizer file often sits beside, not inside, the dataset folder)."""
    candidates = [spec.data_dir] if spec.data_dir is not None else []
    for key in ("DATA_PATH", "TOKENIZER_PATH"):
        value = spec.env.get(key)
        if value and os.path.isabs(value) and os.path.exists(value):
            candidates.append(Path(value))
    chosen: list[Path] = []
    for path in sorted({Path(c).resolve() for c in candidates}, key=lambda p: len(p.parts)):
        if path == workdir or workdir in path.parents:
            continue  # already inside the writable work directory
        if not any(path == c or c in path.parents for c in chosen):
            chosen.append(path)
    return chosen


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


@dataclass
class DockerHandle:
    prepared: DockerPrepared
    container: Any
    t0: float
    started_utc: str
    deadline: float
    lines: list[StampedLine] = field(default_factory=list)
    queue: "queue.Queue[Any]" = field(default_factory=queue.Queue)
    stop_reason: str | None = None
    drained: bool = False
    exit_code: int | None = None
    wall_seconds: float | None = None
    reader_error: str | None = None


class DockerRunner(Runner):
    """Runs `spec.command()` in a container of the pinned image (see module docstring).

    Options (all keyword): image (default: the CPU or, with gpus, the GPU image this checkout
    pins), gpus ("all" or a count; None = no GPU), mem_limit ("auto" = 90% of host memory, or a
    docker size string), pids_limit, shm_size (default 2g, 16g with gpus), tmp_size (the /tmp tmpfs), stop_grace_s (SIGTERM
    to SIGKILL on an interrupt), share_reference_impl (off by default: mount pgolf's
    reference_impl read-only and put it on PYTHONPATH, for records that import it without
    carrying a copy), client (a docker SDK client).
    """

    name = "docker"

    def __init__(self, image: str | None = None, gpus: str | int | None = None, mem_limit: str | int = "auto",
                 pids_limit: int = 32768, shm_size: str | None = None, tmp_size: str = "2g", stop_grace_s: float = 10.0,
                 share_reference_impl: bool = False, client: Any = None):
        self.image = image
        self.gpus = gpus
        self.mem_limit = int(_host_memory_bytes() * 0.9) if mem_limit == "auto" else mem_limit
        self.pids_limit = pids_limit
        # NCCL's intra-node transport lives in /dev/shm: 8 ranks need far more than a CPU run.
        self.shm_size = shm_size or ("16g" if gpus else "2g")
        self.tmp_size = tmp_size
        self.stop_grace_s = stop_grace_s
        self.share_reference_impl = share_reference_impl
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
        from docker.types import DeviceRequest, Mount, Ulimit

        image = self.image
        if image is None:
            from harness.containers import pinned_image

            image = pinned_image("gpu" if self.gpus else "cpu")
        try:
            image_id = self.client.images.get(image).id
        except docker.errors.ImageNotFound:
            kind = "--gpu" if self.gpus else "--cpu"
            raise InputError(f"image {image} not present: build it with `pgolf containers build {kind}`") from None

        workdir = Path(spec.workdir).resolve()
        copy_record(Path(spec.record_dir), workdir)
        if os.getuid() == 0:  # never run the submission as root: hand the copy to the sandbox user
            uid = gid = SANDBOX_UID
            _chown_tree(workdir, uid, gid)
        else:
            uid, gid = os.getuid(), os.getgid()

        mounts = [Mount(target=str(workdir), source=str(workdir), type="bind", read_only=False)]
        for path in read_only_inputs(spec, workdir):
            mounts.append(Mount(target=str(path), source=str(path), type="bind", read_only=True))
        env = dict(spec.env)
        if self.share_reference_impl:
            import reference_impl

            pkg = Path(reference_impl.__file__).resolve().parent
            mounts.append(Mount(target="/opt/pgolf/lib/reference_impl", source=str(pkg), type="bind", read_only=True))
            env.setdefault("PYTHONPATH", "/opt/pgolf/lib")

        kwargs: dict[str, Any] = dict(
            image=image_id, command=spec.command(), working_dir=str(workdir), environment=env,
            user=f"{uid}:{gid}", network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"],
            read_only=True, tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.tmp_size},mode=1777"},
            pids_limit=self.pids_limit, mem_limit=self.mem_limit, memswap_limit=self.mem_limit,
            shm_size=self.shm_size, init=True, mounts=mounts, hostname="pgolf-run",
            extra_hosts={"pgolf-run": "127.0.0.1"},  # torchrun resolves its own hostname; no DNS here
            name=f"pgolf-run-{spec.seed}-{os.getpid()}-{time.monotonic_ns() % 10**9}",
            labels={RUN_LABEL: "1", "org.pgolf.seed": str(spec.seed), "org.pgolf.record": str(spec.record_dir),
                    "org.pgolf.image-tag": image, "org.pgolf.harness-pid": str(os.getpid())},
        )
        if self.gpus:
            count = -1 if self.gpus == "all" else int(self.gpus)
            kwargs["device_requests"] = [DeviceRequest(count=count, capabilities=[["gpu"]])]
            # NVIDIA's advice for PyTorch containers: pinned memory must not hit a memlock limit.
            kwargs["ulimits"] = [Ulimit(name="memlock", soft=-1, hard=-1), Ulimit(name="stack", soft=67108864, hard=67108864)]
        return DockerPrepared(spec=spec, create_kwargs=kwargs, before=snapshot(workdir), image_id=image_id)

    def start(self, prepared: DockerPrepared) -> DockerHandle:
        container = self.client.containers.create(**prepared.create_kwargs)
        try:
            # Attach before start so that no early line is lost.
            frames = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)
            t0 = time.monotonic()
            started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            container.start()
        except BaseException:
            container.remove(force=True)
            raise
        handle = DockerHandle(prepared=prepared, container=container, t0=t0, started_utc=started,
                              deadline=t0 + prepared.spec.timeout_s)
        threading.Thread(target=self._read, args=(handle, frames), daemon=True,
                         name=f"pgolf-docker-reader-{prepared.spec.seed}").start()
        return handle

    def stream(self, handle: DockerHandle) -> Iterator[StampedLine]:
        while not handle.drained:
            remaining = handle.deadline - time.monotonic()
            if remaining <= 0 and handle.stop_reason is None:
                self.stop(handle, "timeout")
            try:
                item = handle.queue.get(timeout=max(0.05, min(remaining, 0.5)))
            except queue.Empty:
                continue
            if item is _END:
                handle.drained = True
                break
            yield item

    def stop(self, handle: DockerHandle, reason: str) -> None:
        import docker

        if handle.stop_reason is not None:
            return
        handle.stop_reason = reason
        try:
            if reason == "timeout":
                handle.container.kill()
            else:
                handle.container.stop(timeout=int(self.stop_grace_s))
        except docker.errors.APIError:
            pass  # already exited (409) or gone (404): nothing left to stop

    def collect(self, handle: DockerHandle) -> RunOutcome:
        import requests

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
        spec = handle.prepared.spec
        after = snapshot(Path(spec.workdir).resolve())
        changed = sorted(p for p, st in after.items() if handle.prepared.before.get(p) != st)
        return RunOutcome(
            seed=spec.seed, exit_code=handle.exit_code, timed_out=handle.stop_reason == "timeout",
            stop_reason=handle.stop_reason, started_utc=handle.started_utc, wall_seconds=handle.wall_seconds,
            lines=list(handle.lines), files={p: st[0] for p, st in sorted(after.items())}, runner=self.name,
            details={"command": handle.prepared.create_kwargs["command"],
                     "image": handle.prepared.create_kwargs["image"],
                     "image_tag": handle.prepared.create_kwargs["labels"]["org.pgolf.image-tag"],
                     "container": handle.prepared.create_kwargs["name"],
                     "user": handle.prepared.create_kwargs["user"], "network": "none",
                     "files_written": changed, "reader_error": handle.reader_error},
        )

    # ---- output ---------------------------------------------------------------------------

    def _read(self, handle: DockerHandle, frames) -> None:
        """Split the attach stream into lines and stamp each on arrival (runs in a thread)."""
        partial = {"stdout": b"", "stderr": b""}

        def emit(data: bytes, name: str) -> None:
            t = time.monotonic() - handle.t0
            text = data.decode("utf-8", errors="replace").rstrip("\r")
            line = StampedLine(t=round(t, 6), text=text, stream=name)
            handle.lines.append(line)
            handle.queue.put(line)

        try:
            for out, err in frames:
                for name, chunk in (("stdout", out), ("stderr", err)):
                    if not chunk:
                        continue
                    buf = partial[name] + chunk
                    *complete, partial[name] = buf.split(b"\n")
                    for data in complete:
                        emit(data, name)
        except Exception as e:  # noqa: BLE001 - a broken stream ends the output, never the harness
            handle.reader_error = f"{type(e).__name__}: {e}"
        finally:
            for name, rest in partial.items():
                if rest:
                    emit(rest, name)
            handle.queue.put(_END)


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
