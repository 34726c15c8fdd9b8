#!/usr/bin/env bash
# Installs and starts a real single-node Slurm cluster (munged, slurmctld, slurmd; no
# slurmdbd) for the Slurm runtime's tests, plus bubblewrap (bwrap) for the sandbox tests and
# what holds their own network namespace: slirp4netns (outbound NAT without the host's
# loopback), iptables (allowlists), iproute2.
# No systemd here: the daemons are started directly. Logs are under /var/log/slurm.
# Idempotent: running daemons with an unchanged slurm.conf are left alone; a changed
# slurm.conf restarts slurmctld and slurmd.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

conf=/etc/slurm/slurm.conf
logdir=/var/log/slurm
ctld_pidfile=/run/slurmctld.pid
slurmd_pidfile=/run/slurmd.pid

apt_install slurm-wlm bubblewrap slirp4netns iptables iproute2

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$logdir" /run/munge
chown munge:munge /run/munge
chmod 0755 /run/munge

# --- munge ------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  log "creating the munge key"
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile=/etc/munge/munge.key --force
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || { log "munged does not answer; see /var/log/munge/munged.log"; exit 1; }
fi

# --- slurm.conf ---------------------------------------------------------------
# The node line is what slurmd detects (`slurmd -C`), with RealMemory a little below the
# total so that slurmd never finds less memory than configured and drains the node.
node=$(hostname -s)
hw=$(slurmd -C | sed -n 1p)
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
hw=$(sed -e 's/^NodeName=[^ ]* //' -e "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<<"$hw")
desired=$(cat <<EOF
# Written by .ci/setup-slurm.sh: a single-node cluster without slurmdbd.
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$ctld_pidfile
SlurmdPidFile=$slurmd_pidfile
SlurmctldLogFile=$logdir/slurmctld.log
SlurmdLogFile=$logdir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
# Schedule a submitted batch job at the next 1 s tick rather than up to 3 s later.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it a job that asks no --mem takes the whole node's memory, one job at a time.
DefMemPerCPU=1000
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for 5 minutes.
MinJobAge=300
# No accounting database (sacct does not work); finished jobs are logged one per line here.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$logdir/jobcomp.log
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
# The jobs holding instances mostly idle: up to 8 may share a core (OverSubscribe).
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
EOF
)

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_daemon() {
  local pidfile="$1" pid
  pid_alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

if [ "$(cat "$conf" 2>/dev/null)" != "$desired" ]; then
  log "writing $conf"
  printf '%s\n' "$desired" >"$conf.tmp"
  mv "$conf.tmp" "$conf"
  if pid_alive "$ctld_pidfile" || pid_alive "$slurmd_pidfile"; then
    log "slurm.conf changed: stopping slurmd and slurmctld"
    stop_daemon "$slurmd_pidfile"
    stop_daemon "$ctld_pidfile"
  fi
fi

# --- daemons ----------------------------------------------------------------
if ! pid_alive "$ctld_pidfile"; then
  log "starting slurmctld"
  slurmctld
fi
for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
if ! pid_alive "$slurmd_pidfile"; then
  log "starting slurmd"
  slurmd
fi

# --- wait for the node ---------------------------------------------------------
state=""
for _ in $(seq 1 120); do
  state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null | sed -n 1p || true)
  case "$state" in
    idle | mixed | allocated | completing) break ;;
    down* | drain* | fail*)
      log "node $node is $state: resuming it"
      scontrol update nodename="$node" state=resume || true
      ;;
  esac
  sleep 0.5
done
case "$state" in
  idle | mixed | allocated | completing) ;;
  *)
    log "Slurm node $node did not become idle within 60 s (state: '${state:-none}')."
    log "See $logdir/slurmctld.log, $logdir/slurmd.log and /var/log/munge/munged.log."
    tail -5 "$logdir/slurmctld.log" "$logdir/slurmd.log" >&2 2>/dev/null || true
    exit 1
    ;;
esac
log "Slurm ready: node $node $state, partition debug ($(sinfo -h -o '%c CPUs, %m MB' | sed -n 1p))"
