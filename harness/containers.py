"""Pinned container images for isolated runs: recipes, their lock files, tags, and builds.

Two recipes live in `containers/` at the repository root:

- `cpu/`: a Debian bookworm rootfs made here with debootstrap (no image registry is reachable),
  imported with `docker import`, plus a venv of wheels checked by sha256. Buildable on any Linux
  host with a Docker engine; the test suite runs submissions in it.
- `gpu/`: the 8xH100 reproduction image (CUDA torch, flash-attn). It needs a registry and a GPU
  host; see its Dockerfile header.

An image's tag is derived from its recipe (Dockerfile + lock, without the `built` notes), so a
changed lock is a different image and a runner can tell that the image it was given is the pinned
one by the `org.pgolf.recipe-digest` label. The Debian mirror cannot be pinned to a snapshot from
here, so the package versions in the lock are compared after debootstrap and differences are
reported (and labelled), not fatal.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from harness import __version__
from harness.atomic import write_json
from harness.errors import InputError

CONTAINERS_DIR = Path(os.environ.get("PGOLF_CONTAINERS_DIR", Path(__file__).resolve().parent.parent / "containers"))
LABEL = "org.pgolf"
# Wheels are fetched for the image's Python (Debian bookworm: CPython 3.11, glibc 2.36).
WHEEL_PLATFORM_ARGS = [
    "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_27_x86_64",
    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
]

Log = Callable[[str], None]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Recipe:
    """One image recipe: a folder with a Dockerfile and its lock."""

    kind: str  # "cpu" or "gpu"
    repository: str  # image repository name; the tag is the recipe digest

    @property
    def dir(self) -> Path:
        return CONTAINERS_DIR / self.kind

    @property
    def lock_path(self) -> Path:
        return self.dir / ("image.lock.json" if self.kind == "cpu" else "requirements.lock")

    def lock(self) -> dict[str, Any]:
        """The CPU lock as a dict (the GPU lock is a pip requirements file: see `digest`)."""
        path = self.lock_path
        if not path.is_file():
            raise InputError("lock file missing (run `pgolf containers build --cpu --relock`)", str(path))
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON: {e.msg}", str(path), e.lineno) from None

    def digest(self) -> str:
        """sha256 over the Dockerfile and the lock, leaving out the `built` notes of a CPU lock."""
        h = hashlib.sha256()
        h.update((self.dir / "Dockerfile").read_bytes())
        if self.kind == "cpu":
            pinned = {k: v for k, v in self.lock().items() if k != "built"}
            h.update(json.dumps(pinned, sort_keys=True).encode())
        else:  # every pip lock of the GPU recipe
            for lock in sorted(self.dir.glob("requirements*.lock")):
                h.update(lock.name.encode() + b"\0" + lock.read_bytes())
        return h.hexdigest()

    def tag(self) -> str:
        return f"{self.repository}:{self.digest()[:12]}"


RECIPES = {"cpu": Recipe("cpu", "pgolf-cpu"), "gpu": Recipe("gpu", "pgolf-gpu")}


def pinned_image(kind: str = "cpu") -> str:
    """The tag of the image that the current checkout pins (what `DockerRunner` runs by default)."""
    return RECIPES[kind].tag()


def default_image(image: str | None, gpus: str | int | None = None) -> str:
    """The image a Docker run uses: `image` when given, else the GPU or CPU image this checkout
    pins (by whether GPUs are asked for)."""
    return image or pinned_image("gpu" if gpus else "cpu")


def docker_client(timeout: float = 600):
    """A client for the local engine (each API call bounded by `timeout` seconds), or
    InputError saying how to start one."""
    import docker  # the SDK; imported here so modules that only read locks don't need it

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as e:  # noqa: BLE001 - any failure means "no engine reachable"
        raise InputError(f"no Docker engine reachable ({e}); start one with `bash containers/ci-setup-docker.sh`") from None


# ---- Debian base (debootstrap -> tar -> docker import) -------------------------------------

def base_tag(debian: dict[str, Any]) -> str:
    spec = {k: debian[k] for k in ("suite", "variant", "mirror", "include")}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"pgolf-base:{debian['suite']}-{debian['variant']}-{digest}"


def debootstrap_rootfs(debian: dict[str, Any], workdir: Path, log: Log) -> tuple[Path, dict[str, str]]:
    """Make the rootfs tarball with debootstrap; return its path and the installed packages."""
    if shutil.which("debootstrap") is None:
        raise InputError("debootstrap not installed (apt-get install debootstrap, or run containers/ci-setup-docker.sh)")
    root = workdir / "rootfs"
    cmd = ["debootstrap", f"--variant={debian['variant']}", "--include=" + ",".join(debian["include"]),
           debian["suite"], str(root), debian["mirror"]]
    log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"debootstrap failed ({proc.returncode}): {proc.stderr.strip()[-2000:] or proc.stdout[-2000:]}")
    query = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${Package}\t${Version}\n"],
                           capture_output=True, text=True, check=True)
    packages = dict(line.split("\t", 1) for line in query.stdout.splitlines() if "\t" in line)
    # Caches and logs vary from run to run and are useless in the image.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
        for p in (root / sub).glob("*"):
            if p.is_file():
                p.unlink()
    tarball = workdir / "rootfs.tar"
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--sort=name", "-cf", str(tarball), "."], check=True)
    shutil.rmtree(root)
    return tarball, packages


def package_drift(locked: dict[str, str], found: dict[str, str]) -> list[str]:
    """Human lines for every package whose version differs from the lock (or is new/missing)."""
    lines = []
    for name in sorted(set(locked) | set(found)):
        a, b = locked.get(name), found.get(name)
        if a != b:
            lines.append(f"{name}: locked {a or '-'} -> found {b or '-'}")
    return lines


def ensure_base(client, lock: dict[str, Any], log: Log, force: bool = False) -> tuple[str, dict[str, Any]]:
    """Import the Debian base image unless present; return its tag and what the build found."""
    debian = lock["debian"]
    tag = base_tag(debian)
    if not force and client.images.list(name=tag):
        log(f"base image {tag} present")
        return tag, {}
    with tempfile.TemporaryDirectory(prefix="pgolf-rootfs-", dir=os.environ.get("PGOLF_BUILD_TMP", "/var/tmp")) as tmp:
        tarball, packages = debootstrap_rootfs(debian, Path(tmp), log)
        rootfs_sha = _sha256_file(tarball)
        drift = package_drift(debian["packages"], packages) if debian.get("packages") else []
        for line in drift:
            log(f"warning: debian package drift: {line}")
        changes = [f"LABEL {LABEL}.image=base {LABEL}.rootfs-sha256={rootfs_sha} {LABEL}.debian-drift={len(drift)}"]
        log(f"$ docker import {tarball.name} {tag}  (sha256 {rootfs_sha})")
        repo, _, version = tag.partition(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=version, changes=changes)
        found = {"rootfs_sha256": rootfs_sha, "rootfs_bytes": tarball.stat().st_size,
                 "packages": packages, "debian_drift": drift}
    return tag, found


# ---- wheels ---------------------------------------------------------------------------------

def wheel_cache() -> Path:
    return Path(os.environ.get("PGOLF_WHEEL_CACHE", Path.home() / ".cache" / "pgolf" / "wheels"))


def requirements_lock(wheels: list[dict[str, str]]) -> str:
    """pip's hash-checking requirements format, written from the lock's wheel list."""
    return "".join(f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}\n" for w in wheels)


def fetch_wheels(wheels: list[dict[str, str]], dest: Path, log: Log) -> None:
    """Put every locked wheel in `dest`, from the cache or pip, each checked against its sha256."""
    cache = wheel_cache()
    cache.mkdir(parents=True, exist_ok=True)
    missing = [w for w in wheels if not ((cache / w["filename"]).is_file()
                                         and _sha256_file(cache / w["filename"]) == w["sha256"])]
    if missing:
        req = cache / ".requirements.lock"
        req.write_text(requirements_lock(missing))
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
               "-r", str(req), "-d", str(cache), *WHEEL_PLATFORM_ARGS]
        log(f"$ pip download {len(missing)} wheels -> {cache}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise InputError(f"pip download failed: {proc.stderr.strip()[-2000:]}")
    dest.mkdir(parents=True, exist_ok=True)
    for w in wheels:
        src = cache / w["filename"]
        if not src.is_file() or _sha256_file(src) != w["sha256"]:
            raise InputError(f"wheel {w['filename']} missing or its sha256 differs from the lock", str(src))
        try:
            os.link(src, dest / w["filename"])
        except OSError:
            shutil.copy2(src, dest / w["filename"])


def resolve_wheels(requirements_in: Path, log: Log) -> list[dict[str, str]]:
    """Resolve the top-level requirements (with dependencies) into pinned, hashed wheels."""
    with tempfile.TemporaryDirectory(prefix="pgolf-relock-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "-r", str(requirements_in), "-d", tmp,
               *WHEEL_PLATFORM_ARGS]
        log("$ " + " ".join(cmd[2:]))
        subprocess.run(cmd, check=True)
        wheels = []
        for path in sorted(Path(tmp).glob("*.whl")):
            name, version = path.name.split("-")[:2]
            wheels.append({"name": name.replace("_", "-").lower(), "version": version,
                           "filename": path.name, "sha256": _sha256_file(path)})
            dst = wheel_cache() / path.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst)
    return wheels


# ---- image builds ---------------------------------------------------------------------------

def _stream_build(client, log: Log, **kwargs) -> None:
    for chunk in client.api.build(decode=True, rm=True, forcerm=True, **kwargs):
        if "error" in chunk:
            raise InputError(f"docker build failed: {chunk['error'].strip()}", str(kwargs.get("path")))
        text = chunk.get("stream", "").rstrip()
        if text:
            log(text)


def image_present(client, tag: str) -> bool:
    return bool(client.images.list(name=tag))


def build_cpu(client, log: Log = print, force: bool = False, relock: bool = False) -> str:
    """Build the CPU image unless its pinned tag is present; return the tag."""
    recipe = RECIPES["cpu"]
    if relock:
        relock_cpu(client, log)
    lock = recipe.lock()
    tag = recipe.tag()
    if image_present(client, tag) and not force:
        log(f"{tag} present")
        return tag
    base, found = ensure_base(client, lock, log, force=force and not relock)
    with tempfile.TemporaryDirectory(prefix="pgolf-ctx-", dir=os.environ.get("PGOLF_BUILD_TMP", "/var/tmp")) as tmp:
        ctx = Path(tmp)
        shutil.copy2(recipe.dir / "Dockerfile", ctx / "Dockerfile")
        (ctx / "requirements.lock").write_text(requirements_lock(lock["wheels"]))
        fetch_wheels(lock["wheels"], ctx / "wheels", log)
        torch = next((w["version"] for w in lock["wheels"] if w["name"] == "torch"), "")
        labels = {f"{LABEL}.image": "cpu", f"{LABEL}.recipe-digest": recipe.digest(),
                  f"{LABEL}.pgolf-version": __version__, f"{LABEL}.torch": torch, f"{LABEL}.base": base}
        if found:
            labels[f"{LABEL}.debian-drift"] = str(len(found["debian_drift"]))
        log(f"$ docker build --network none -t {tag} (base {base})")
        _stream_build(client, log, path=str(ctx), tag=tag, buildargs={"BASE_IMAGE": base},
                      network_mode="none", labels=labels)
    return tag


def relock_cpu(client, log: Log) -> None:
    """Re-resolve the CPU wheels and Debian packages and write `image.lock.json`."""
    recipe = RECIPES["cpu"]
    old = recipe.lock() if recipe.lock_path.is_file() else {}
    debian = dict(old.get("debian") or {"suite": "bookworm", "variant": "minbase",
                                         "mirror": "http://deb.debian.org/debian",
                                         "include": ["python3", "python3-venv", "passwd"]})
    wheels = resolve_wheels(recipe.dir / "requirements.in", log)
    debian["packages"] = {}
    _, found = ensure_base(client, {"debian": debian}, log, force=True)
    debian["packages"] = found["packages"]
    lock = {"schema": 1, "debian": debian, "wheels": wheels,
            "built": {"rootfs_sha256": found["rootfs_sha256"], "rootfs_bytes": found["rootfs_bytes"],
                      "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "note": "rootfs digest of the build that wrote this lock; debootstrap output is "
                              "not bit-reproducible, so later builds record theirs in the image label"}}
    write_json(recipe.lock_path, lock)
    log(f"wrote {recipe.lock_path}")


def build_gpu(client, log: Log = print, force: bool = False) -> str:
    """Build the GPU image (needs the CUDA base image from a registry and PyPI); return the tag."""
    recipe = RECIPES["gpu"]
    tag = recipe.tag()
    if image_present(client, tag) and not force:
        log(f"{tag} present")
        return tag
    labels = {f"{LABEL}.image": "gpu", f"{LABEL}.recipe-digest": recipe.digest(),
              f"{LABEL}.pgolf-version": __version__}
    buildargs = {"FA3_SHA256": os.environ["PGOLF_FA3_SHA256"]} if os.environ.get("PGOLF_FA3_SHA256") else {}
    log(f"$ docker build -t {tag} {recipe.dir}")
    _stream_build(client, log, path=str(recipe.dir), tag=tag, labels=labels, buildargs=buildargs)
    return tag


def list_images(client) -> list[dict[str, Any]]:
    """Every pgolf image on the engine, marking the ones the current checkout pins."""
    pinned = {}
    for kind, recipe in RECIPES.items():
        try:
            pinned[recipe.tag()] = kind
        except (InputError, OSError):
            pass
    rows = []
    for image in client.images.list(filters={"label": f"{LABEL}.image"}):
        labels = image.labels or {}
        for tag in image.tags or ["<none>"]:
            rows.append({"tag": tag, "id": image.short_id, "kind": labels.get(f"{LABEL}.image", "?"),
                         "size_mb": round(image.attrs.get("Size", 0) / 1e6), "created": image.attrs.get("Created", "")[:19],
                         "pinned": tag in pinned, "torch": labels.get(f"{LABEL}.torch", "")})
    return sorted(rows, key=lambda r: (r["kind"], r["tag"]))
