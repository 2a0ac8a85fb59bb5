#!/bin/bash
# Single-node SLURM + munge on localhost, no systemd. Run as root.
# usage: slurm_local.sh start|stop|status
# env:   SLURM_LOCAL_BASE (default /tmp/slurm-local; keep it short: munge socket path)
#        SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT (default: first free pair
#        16817/16818, 16827/16828, ...)
#        SLURM_LOCAL_NODES (default 1): N > 1 registers N nodes n1..nN on this host, one
#        slurmd each (Debian's slurm is built with MULTIPLE_SLURMD), slurmd ports
#        SLURMD_PORT..SLURMD_PORT+N-1; each fake node claims the whole machine
# Described in docs/architecture.md#the-cluster-layer. Test-fixture choices: ProctrackType=proctrack/pgid (a
# scancel kills the job's whole process group, so no Ray process outlives its job; linuxproc
# loses Ray's reparented processes), no cgroups, KillWait=10 (the Ray template's exit cleanup,
# ~3-6 s on 2 loaded cores, stays below it), nothing written outside $BASE, daemons found only through our pid files.
# After start:  export SLURM_CONF=$SLURM_LOCAL_BASE/etc/slurm.conf
set -euo pipefail
BASE=${SLURM_LOCAL_BASE:-/tmp/slurm-local}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-}
NNODES=${SLURM_LOCAL_NODES:-1}
export SLURM_CONF=$BASE/etc/slurm.conf
SOCK=$BASE/munge/munge.socket

# pid file exists, process alive, and its name is the expected daemon (guards PID reuse)
# (a zombie counts as dead: PID 1 of a sandbox may reap daemons late)
alive_pid() {
  [ -n "$1" ] && [ "$(cat /proc/"$1"/comm 2>/dev/null)" = "$2" ] &&
    ! grep -qE '^[0-9]+ \([^)]*\) Z' /proc/"$1"/stat 2>/dev/null
}
alive() { alive_pid "$(cat "$1" 2>/dev/null)" "$2"; }

status() {
  alive "$BASE/munge/munged.pid" munged && alive "$BASE/run/slurmctld.pid" slurmctld &&
    slurmds_alive &&
    [ "$(sinfo -h -N -o %T 2>/dev/null | grep -cxE '(idle|mixed|allocated)')" -eq "$NNODES" ]
}

node_names() {
  if [ "$NNODES" -eq 1 ]; then hostname -s; else seq -f 'n%g' 1 "$NNODES"; fi
}
slurmds_alive() {
  local n
  for n in $(node_names); do alive "$BASE/run/slurmd-$n.pid" slurmd || return 1; done
}

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
pick_ports() {   # first free pair 16817/16818, 16827/16828, ... unless given
  local p
  if [ -z "$CTLD_PORT" ] || [ -z "$SLURMD_PORT" ]; then
    for p in $(seq 16817 10 17817); do
      local i ok=1
      for i in $(seq 0 "$NNODES"); do port_free $((p + i)) || ok=; done
      if [ -n "$ok" ]; then CTLD_PORT=$p; SLURMD_PORT=$((p + 1)); return; fi
    done
    echo "no free port pair" >&2; return 1
  fi
}

write_conf() {
  local host nodeline n i=0
  host=$(hostname -s)
  # slurmd -C prints the real topology; drop UpTime, pin the address to loopback
  nodeline=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
  cat > "$SLURM_CONF" <<EOF
ClusterName=localtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
SlurmctldDebug=info
SlurmdDebug=info
EOF
  for n in $(node_names); do
    echo "NodeName=$n NodeHostname=$host NodeAddr=127.0.0.1 Port=$((SLURMD_PORT + i)) $nodeline State=UNKNOWN"
    i=$((i + 1))
  done >> "$SLURM_CONF"
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >> "$SLURM_CONF"
}

start() {
  if status; then echo "already running ($BASE)"; return 0; fi
  stop >/dev/null 2>&1 || true            # clear half-started leftovers
  mkdir -p "$BASE"/{etc,munge,state,spool,log,run}
  chmod 700 "$BASE/etc"                   # key dir: private
  chmod 755 "$BASE" "$BASE/munge"         # munged needs o+x on the socket dir
  [ -s "$BASE/etc/munge.key" ] || mungekey -c -b 1024 -k "$BASE/etc/munge.key"
  chmod 600 "$BASE/etc/munge.key"
  pick_ports
  write_conf
  chmod 644 "$SLURM_CONF"
  chmod 711 "$BASE/etc"                   # clients (any user) must read slurm.conf
  munged --socket="$SOCK" --key-file="$BASE/etc/munge.key" \
    --pid-file="$BASE/munge/munged.pid" --log-file="$BASE/log/munged.log" \
    --seed-file="$BASE/munge/munged.seed"
  for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
  slurmctld -c                            # -c: forget old jobs; daemonizes, writes SlurmctldPidFile
  for n in $(node_names); do              # daemonizes, writes SlurmdPidFile
    mkdir -p "$BASE/spool/$n"; slurmd -N "$n"
  done
  for _ in $(seq 150); do status && { echo "started ($BASE)"; return 0; }; sleep 0.2; done
  echo "SLURM did not come up; logs in $BASE/log" >&2; return 1
}

# slurmstepd (one per running job) outlives slurmd: find ours by the SLURM_CONF
# they inherited from slurmd
our_stepds() {
  local d
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = slurmstepd ] || continue
    if grep -qzxF "SLURM_CONF=$SLURM_CONF" "$d/environ" 2>/dev/null; then echo "${d#/proc/}"; fi
  done
}

cancel_jobs() {
  local ids pid c
  if alive "$BASE/run/slurmctld.pid" slurmctld && alive "$BASE/munge/munged.pid" munged; then
    ids=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ') || true
    if [ -n "${ids// }" ]; then
      timeout 10 scancel $ids 2>/dev/null || true
      for _ in $(seq 150); do     # until slurmctld has no job left (incl. COMPLETING)
        [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.1
      done
      for _ in $(seq 50); do [ -z "$(our_stepds)" ] && break; sleep 0.1; done
    fi
  fi
  for pid in $(our_stepds); do            # last resort: job process groups, then stepd
    for c in $(ps -o pid= --ppid "$pid"); do   # the job script leads its own group
      if [ "$(ps -o pgid= -p "$c" | tr -d ' ')" = "$c" ]; then kill -KILL -- "-$c" 2>/dev/null || true
      else kill -KILL "$c" 2>/dev/null || true; fi
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

stop() {
  cancel_jobs
  # SIGTERM is the documented stop for all three daemons (slurmctld saves state
  # first). Not `scontrol shutdown`: it needs munge + RPC, and retries ~60 s when
  # either is gone. Only PIDs from our own pid files, checked by name.
  local f p name pid
  for f in $(for n in $(node_names); do echo "run/slurmd-$n.pid:slurmd"; done) \
           run/slurmctld.pid:slurmctld munge/munged.pid:munged; do
    p="$BASE/${f%%:*}"; name=${f##*:}
    pid=$(cat "$p" 2>/dev/null) || pid=
    # wait on the PID, not the pid file: slurmd unlinks its pid file at the
    # start of shutdown, then may take seconds to finish
    if alive_pid "$pid" "$name"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do alive_pid "$pid" "$name" || break; sleep 0.1; done
      if alive_pid "$pid" "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$p"
  done
  echo "stopped ($BASE)"
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) if status; then echo up; else echo down; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
