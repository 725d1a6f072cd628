#!/usr/bin/env bash
# Make a single-node Slurm cluster answer on this machine; idempotent, quick on re-run.
#
# Called by .ci/run (root, a fresh Debian bookworm machine, no systemd). Steps, each skipped
# when already done:
#   1. apt-get install Debian's munge, slurmctld, slurmd and slurm-client (Slurm 22.05 on
#      bookworm);
#   2. a munge key (the package makes one; made here if missing) and munged, as the munge user;
#   3. /etc/slurm/slurm.conf from containers/slurm/slurm.conf.in, filled with this machine's
#      name, CPUs and memory (`slurmd -C`). A slurm.conf without our `managed-by` first line is
#      a site's own: the script stops rather than overwrite it;
#   4. slurmctld and slurmd started in the background (they daemonize; logs and pid files in
#      /var/log/slurm and /run); a DOWN or DRAINED node is resumed;
#   5. wait until `sinfo` shows the node idle or allocated, and (when idle) a test job ran.
# Leaves the daemons running for the tests. Stop them with
#   kill $(cat /run/slurmd.pid) $(cat /run/slurmctld.pid)
# The tests kill and restart slurmd through `bash containers/ci-setup-slurm.sh --start-slurmd`.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MARK="# managed-by: pgolf containers/ci-setup-slurm.sh"
t0=$(date +%s)
say() { echo "[ci-setup-slurm +$(( $(date +%s) - t0 ))s] $*"; }

# A daemon is alive when its pid file names a live process of that name. A killed daemon may
# linger as a zombie (this machine's init need not reap it): that is not alive.
alive() {  # $1: pid file
  local pid state comm
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
  comm=$(cat "/proc/$pid/comm" 2>/dev/null)
  [ "$state" != Z ] && [ "$comm" = "$(basename "$1" .pid)" ]
}

start_slurmd() {
  if alive /run/slurmd.pid; then return 0; fi
  say "starting slurmd"
  $SUDO slurmd -f "$CONF"
  for _ in $(seq 50); do alive /run/slurmd.pid && return 0; sleep 0.2; done
  tail -n 20 /var/log/slurm/slurmd.log >&2 || true
  echo "slurmd would not start" >&2
  return 1
}

if [ "${1:-}" = "--start-slurmd" ]; then
  start_slurmd
  exit 0
fi

. containers/ci-apt.sh
install_missing munged:munge slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client

# --- munge ------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  say "creating a munge key"
  $SUDO mungekey --create --keyfile=/etc/munge/munge.key
  $SUDO chown munge:munge /etc/munge/munge.key
  $SUDO chmod 0400 /etc/munge/munge.key
fi
$SUDO install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  $SUDO runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
  munge -n </dev/null | unmunge >/dev/null
fi

# --- slurm.conf -------------------------------------------------------------------------------
hw=$(slurmd -C | head -n 1)
node=$(sed -n 's/.*NodeName=\([^ ]*\).*/\1/p' <<<"$hw")
cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
mem=$(( mem * 9 / 10 ))  # leave the OS its share, or slurmd registers with less and drains the node
if [ -e "$CONF" ] && [ "$(head -n 1 "$CONF")" != "$MARK" ]; then
  echo "$CONF exists and was not written by this script: not touching a site's Slurm set-up" >&2
  exit 1
fi
want=$(sed -e "s/@NODE@/$node/g" -e "s/@CPUS@/$cpus/g" -e "s/@MEMORY_MB@/$mem/g" containers/slurm/slurm.conf.in)
changed=0
if [ ! -e "$CONF" ] || [ "$(cat "$CONF")" != "$want" ]; then
  say "writing $CONF (node $node, $cpus CPUs, $mem MB)"
  $SUDO install -d -m 0755 "$(dirname "$CONF")"
  printf '%s\n' "$want" | $SUDO tee "$CONF" >/dev/null
  changed=1
fi
$SUDO install -d -o slurm -g slurm -m 0755 /var/lib/slurm/slurmctld /var/log/slurm
$SUDO install -d -m 0755 /var/lib/slurm/slurmd

# --- daemons ----------------------------------------------------------------------------------
if [ "$changed" = 1 ]; then  # a running daemon keeps its old configuration: restart it
  for pidf in /run/slurmd.pid /run/slurmctld.pid; do
    if alive "$pidf"; then $SUDO kill "$(cat "$pidf")"; fi
  done
  for _ in $(seq 50); do alive /run/slurmd.pid || alive /run/slurmctld.pid || break; sleep 0.2; done
fi
if ! alive /run/slurmctld.pid; then
  say "starting slurmctld"
  $SUDO slurmctld -f "$CONF"
fi
for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
scontrol ping >/dev/null || { tail -n 20 /var/log/slurm/slurmctld.log >&2; echo "slurmctld does not answer" >&2; exit 1; }
start_slurmd

# --- wait for the node ------------------------------------------------------------------------
state=""
for _ in $(seq 150); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|drained*) $SUDO scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.2
done
case "$state" in
  idle|mixed|allocated|completing) ;;
  *) tail -n 20 /var/log/slurm/slurmctld.log >&2; echo "node $node is '$state', not usable" >&2; exit 1 ;;
esac
if [ "$state" = idle ]; then
  say "node $node $state; a test job"
  timeout 60 srun -N1 -n1 -t 1 true
else
  say "node $node $state (jobs running): no test job"
fi
say "cluster ready: $(sinfo -h -o '%P %D %T %c CPUs')"
