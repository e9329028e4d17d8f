#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine for kitrun's Slurm executor
# tests (README, "Slurm executor"): munged, slurmctld and slurmd with their
# configuration, state, logs and PID files in a fresh temp dir. Writes
# $STATE (default out/slurm/env), a shell fragment with SLURM_CONF and the
# temp dir, which scripts/slurm-down.sh reads to stop the daemons by PID.
# Usage: scripts/slurm-up.sh [STATE]
set -euo pipefail
state=${1:-out/slurm/env}
if [ -e "$state" ]; then
	echo "slurm-up: $state exists: a cluster may be up (run scripts/slurm-down.sh first)" >&2
	exit 1
fi
for c in munged slurmctld slurmd sbatch; do
	command -v "$c" >/dev/null || { echo "slurm-up: $c missing (make deps installs slurm-wlm and munge)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "slurm-up: needs root (slurmd runs jobs as their users)" >&2; exit 1; }

dir=$(mktemp -d /tmp/kitrun-slurm.XXXXXX)
chmod 755 "$dir"
mkdir -p "$(dirname "$state")"
printf 'SLURM_DIR=%s\nSLURM_CONF=%s/slurm.conf\n' "$dir" "$dir" > "$state"
node=$(hostname -s)
cpus=$(nproc)
memmib=$(awk '/MemTotal/ {print int($2/1024*0.8)}' /proc/meminfo)
# Ports away from Slurm's defaults (6817/6818), free on this machine.
ctldport=${SLURM_CTLD_PORT:-16817}
slurmdport=${SLURM_SLURMD_PORT:-16818}

# munge: its own key and socket, run as user munge (it refuses root-owned keys).
mkdir -p "$dir/munge"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$dir/munge"
chmod 755 "$dir/munge" # munged and its clients need x on the socket dir
chmod 400 "$dir/munge/munge.key"
runuser -u munge -- munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
	--pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed"

mkdir -p "$dir/ctld" "$dir/d"
cat > "$dir/slurm.conf" <<CONF
ClusterName=kitrun
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctldport
SlurmdPort=$slurmdport
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol this long (no slurmdbd here).
MinJobAge=900
KillWait=10
SlurmdTimeout=60
InactiveLimit=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memmib Feature=kvm State=UNKNOWN
PartitionName=kvm Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -i
slurmd
# Up when a job runs on the node (deadline 60 s).
if out=$(timeout 60 srun -N1 -t1 -J kitrun-slurm-up hostname 2>&1); then
	echo "slurm-up: node $node ran a job ($out); SLURM_CONF=$SLURM_CONF (state: $state)"
	exit 0
fi
echo "slurm-up: no job ran on node $node within 60 s: $out; logs in $dir" >&2
tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
