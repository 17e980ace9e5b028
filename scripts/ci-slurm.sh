#!/usr/bin/env bash
# The Slurm backend, for real: a one-node Slurm cluster on this machine (Debian's slurm-wlm,
# installed if missing), the quickstart submitted to it at a reduced size with
# `clirlab submit --backend slurm --wait`, then checks that every cell ran, that `status` saw
# them running and done, that the report is complete and that a second submit finds nothing
# left to do. Needs root (apt, daemons). Re-runnable: each run starts a fresh cluster under
# $CLIRLAB_SLURM_CI_DIR (default /tmp/clirlab-slurm-ci) and stops it on exit.
#
#   bash scripts/ci-slurm.sh            # CLIRLAB_SLURM_CI_STEPS=N sets the training steps (200)
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${CLIRLAB_SLURM_CI_DIR:-/tmp/clirlab-slurm-ci}
STEPS=${CLIRLAB_SLURM_CI_STEPS:-200}
# Not Slurm's default ports, so that a Slurm already on the machine is left alone.
CTLD_PORT=16817
SLURMD_PORT=16818
# A results path with a space, a quote and a percent sign: the job script's quoting is tested too.
RESULTS="$WORK/shared results/it's 100%"

say() { printf '\n== ci-slurm: %s\n' "$*"; }
logs() {
  for f in "$WORK"/log/*; do
    [ -f "$f" ] && { printf -- '---- %s (last 40 lines)\n' "$f"; tail -n 40 "$f"; }
  done
  for f in "$RESULTS"/quickstart/slurm/*/*.out; do
    [ -f "$f" ] && { printf -- '---- %s\n' "$f"; tail -n 20 "$f"; }
  done
  return 0
}
fail() {
  printf '\nci-slurm: FAILED: %s\n' "$*" >&2
  logs >&2
  # Again at the end: CI shows the tail of the output.
  printf '\nci-slurm: FAILED: %s\n' "$*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root (installs slurm-wlm and runs slurmctld, slurmd and munged)"

# Ends a daemon started by this script (or by an earlier run of it), by the pid it recorded,
# if that pid is still the same program.
stop() {
  local name=$1 pidfile="$WORK/run/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
stop_all() {
  stop slurmd
  stop slurmctld
  stop munged
}

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
  ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
say "$(slurmctld -V), $(munged -V 2>&1 | head -n 1)"

# A fresh cluster: whatever an earlier run left is stopped and wiped.
stop_all
rm -rf "$WORK"
mkdir -p "$WORK"/{etc,run,log,state,spool}
chmod 755 "$WORK" "$WORK/run"
chmod 700 "$WORK/etc"
finish() {
  local status=$?
  say "stopping the cluster"
  stop_all
  # The plain closing line CI reads: this script is one test.
  if [ "$status" = 0 ]; then echo "ci-slurm: 1 passed, 0 failed"; else echo "ci-slurm: 0 passed, 1 failed"; fi
  exit "$status"
}
trap finish EXIT

say "munged on a private socket and key"
# (mungekey ships with munge >= 0.5.14; a random file does as well.)
mungekey --create --keyfile="$WORK/etc/munge.key" 2>/dev/null ||
  dd if=/dev/urandom of="$WORK/etc/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/etc/munge.key"
MUNGE_SOCKET="$WORK/run/munge.socket"
munged --socket="$MUNGE_SOCKET" --key-file="$WORK/etc/munge.key" --log-file="$WORK/log/munged.log" \
  --pid-file="$WORK/run/munged.pid" --seed-file="$WORK/etc/munged.seed" ||
  fail "munged did not start"
for _ in $(seq 50); do
  munge -n --socket="$MUNGE_SOCKET" 2>/dev/null | unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1 && break
  sleep 0.1
done
munge -n --socket="$MUNGE_SOCKET" | unmunge --socket="$MUNGE_SOCKET" >/dev/null || fail "munge does not answer"

HOST=$(hostname -s)
CPUS=$(nproc)
# 90% of the memory: a node that reports less than it is configured with gets drained.
MEM_MB=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
export SLURM_CONF="$WORK/etc/slurm.conf"
say "slurm.conf: node $HOST, $CPUS CPUs, ${MEM_MB} MB"
# No cgroups (containers rarely allow them): processes are tracked through /proc, tasks are not
# bound to cores, and no accounting. Cores are the consumable resource (CR_Core), so
# --cpus-per-cell decides how many cells run at once. Daemons run as root.
cat >"$SLURM_CONF" <<EOF
ClusterName=clirlabci
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/run/slurmctld.daemon.pid
SlurmdPidFile=$WORK/run/slurmd.daemon.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

say "starting slurmctld and slurmd"
# In the foreground (-D) behind &, so that $! is the daemon itself.
slurmctld -D -f "$SLURM_CONF" >>"$WORK/log/slurmctld.out" 2>&1 &
echo $! >"$WORK/run/slurmctld.pid"
slurmd -D -f "$SLURM_CONF" -N "$HOST" >>"$WORK/log/slurmd.out" 2>&1 &
echo $! >"$WORK/run/slurmd.pid"
state=""
for _ in $(seq 120); do
  state=$(sinfo --noheader --nodes="$HOST" --format=%t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || fail "the node is not idle after 60 s (sinfo says: '${state:-no answer}')"
sinfo

# The dev-profile binary: after `cargo test` it is already built (a release build would add
# minutes to CI), and the reduced quickstart is small enough for it.
say "building the binary"
cargo build --quiet
# (CARGO_TARGET_DIR, if set, moves it.)
TARGET=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
BIN="${TARGET:-$PWD/target}/debug/clirlab"
[ -x "$BIN" ] || fail "no binary at $BIN after cargo build"

say "submitting the quickstart (train.steps=$STEPS) and waiting for it"
mkdir -p "$RESULTS"
DIR="$RESULTS/quickstart"
"$BIN" submit experiments/quickstart.yaml --backend slurm --results "$RESULTS" --set "train.steps=$STEPS" \
  --cpus-per-cell 1 --time 30 --extra-sbatch "--comment=clirlab ci" --wait >"$WORK/submit.out" 2>&1 &
submit=$!
# While the array runs, `status` must show cells running.
# (Each answer is kept whole, not piped into grep, and its errors go to a log shown on failure.)
saw_running=no
polls=0
while kill -0 "$submit" 2>/dev/null; do
  if [ -f "$DIR/slurm/1/job.json" ]; then
    polls=$((polls + 1))
    answer=$("$BIN" status "$DIR" 2>>"$WORK/log/status-poll.err" || true)
    if grep -q '^running ' <<<"$answer"; then
      saw_running=yes
      head -n 2 <<<"$answer"
      break
    fi
    printf -- '--- poll %d\n%s\n' "$polls" "$answer" >>"$WORK/log/status-poll.out"
  fi
  sleep 0.1
done
submit_rc=0
wait "$submit" || submit_rc=$?
cat "$WORK/submit.out"
[ "$submit_rc" = 0 ] || fail "clirlab submit --wait exited with $submit_rc"
grep -q '^submitted Slurm job [0-9]' "$WORK/submit.out" || fail "submit printed no job id"
[ "$saw_running" = yes ] || fail "clirlab status never showed a running cell while the job ran ($polls polls; log/status-poll.*)"
JOB=$(sed -n 's/^submitted Slurm job \([0-9]*\).*/\1/p' "$WORK/submit.out")
# An #SBATCH value with a space reached Slurm whole.
# (Captured first: `grep -q` ends at its first match, and under pipefail the writer it leaves
# behind, killed by SIGPIPE, would fail the check.)
job_info=$(scontrol show job "$JOB")
grep -q 'Comment=clirlab ci' <<<"$job_info" || fail "job $JOB lost its --extra-sbatch comment"

say "the job script, and the log of its first task"
cat "$DIR/slurm/1/job.sbatch"
cat "$DIR"/slurm/1/*_0.out

say "checking status and report"
"$BIN" status "$DIR" | tee "$WORK/status.out"
grep -q '6 cells — 6 done, 0 running, 0 failed, 0 pending' "$WORK/status.out" || fail "status: not all 6 cells done"
for schedule in constant linear exponential; do
  grep -q "^schedule-${schedule}_" "$DIR/report/summary.csv" || fail "summary.csv has no row for schedule=$schedule"
  grep -q "schedule=${schedule}" "$DIR/report/report.md" || fail "report.md does not show schedule=$schedule"
done
! grep -q 'without results' "$DIR/report/report.md" || fail "report.md lists cells without results"
n_logs=$(find "$DIR/slurm/1" -name '*.out' | wc -l)
[ "$n_logs" = 6 ] || fail "expected 6 task logs in $DIR/slurm/1, found $n_logs"

say "submitting again: nothing is left to run"
"$BIN" submit experiments/quickstart.yaml --backend slurm --results "$RESULTS" --set "train.steps=$STEPS" |
  tee "$WORK/resubmit.out"
grep -q 'no cell to submit' "$WORK/resubmit.out" || fail "a second submit found cells to run"
[ ! -e "$DIR/slurm/2" ] || fail "a second submit wrote a submission"

say "OK: 6 cells ran as Slurm job $JOB; report at $DIR/report/report.md"
