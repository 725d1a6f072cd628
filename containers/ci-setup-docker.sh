#!/usr/bin/env bash
# Make a Docker engine answer and the pinned CPU image exist; idempotent, quick on re-run.
#
# Called by .ci/run. Steps, each skipped when already done:
#   1. apt-get install Debian's docker.io and debootstrap (no registry is reachable, so images
#      are built from a debootstrap rootfs; see harness/containers.py);
#   2. start dockerd in the background (setsid, log in $PGOLF_DOCKERD_LOG). Submissions run with
#      network_mode=none only, so the engine needs no bridge and touches no iptables rules:
#      --bridge=none --iptables=false --ip-masq=false. overlay2 first; if that engine does not
#      answer, retry with the vfs storage driver (slow but works on any filesystem);
#   3. wait until `docker info` answers (60 s per try);
#   4. `pgolf containers build --cpu` (returns at once when the pinned tag is present).
# Leaves dockerd running: later steps (the tests) need it; `kill $(cat /var/run/docker.pid)`
# stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=${PGOLF_DOCKERD_LOG:-/var/log/pgolf-dockerd.log}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
t0=$(date +%s)
say() { echo "[ci-setup-docker +$(( $(date +%s) - t0 ))s] $*"; }

. containers/ci-apt.sh
install_missing dockerd:docker.io debootstrap:debootstrap

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {  # $@: extra dockerd flags
  say "starting dockerd $*"
  $SUDO mkdir -p "$(dirname "$LOG")"
  # setsid: the engine outlives this script and is not in its process group.
  $SUDO setsid dockerd --bridge=none --iptables=false --ip-masq=false "$@" >>"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 60); do
    engine_answers && return 0
    sleep 1
  done
  return 1
}

stop_dockerd() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  [ -n "$pid" ] && $SUDO kill "$pid" 2>/dev/null || true
  for _ in $(seq 20); do [ -e /var/run/docker.pid ] || return 0; sleep 1; done
}

if engine_answers; then
  say "docker engine already answers"
elif ! start_dockerd; then
  say "dockerd did not answer with the default storage driver; log tail:"
  tail -n 20 "$LOG" >&2 || true
  stop_dockerd
  start_dockerd --storage-driver=vfs || { tail -n 40 "$LOG" >&2; echo "dockerd would not start" >&2; exit 1; }
fi
say "engine: $(docker info --format '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupVersion}}')"

say "building the pinned CPU image (skipped when present)"
python -m harness.cli containers build --cpu
say "done"
