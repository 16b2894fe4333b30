#!/bin/bash
# The entrypoint of a boxkube node (run by tini as PID 1): makes the cgroup
# hierarchies writable for the inner engine (cgroup v1 and v2), uses the
# iptables backend that the host uses, starts the inner Docker engine and
# waits until it answers, then runs the given command (by default: sleep).
#
# Environment:
#   BOXKUBE_DOCKERD=0            do not start dockerd (a node that runs no pods)
#   BOXKUBE_DOCKERD_ARGS="..."   more dockerd flags, e.g. "--bip=10.244.1.1/24 --ip-masq=false"
#   BOXKUBE_DOCKERD_TIMEOUT=30   seconds to wait for dockerd to answer
#
# The node container is run either --privileged, or (where the engine refuses
# that) with the capability set of ../shared/notes/docker-in-docker.md; in the
# second case the cgroup hierarchies are mounted read-only and must be
# mounted afresh, read-write.

set -o errexit -o nounset -o pipefail

log() { echo "boxkube-entrypoint: $*" >&2; }

now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

started_ms=$(now_ms)

# Mounts under /sys/fs/cgroup as "MOUNTPOINT MOUNT-OPTIONS FSTYPE SUPER-OPTIONS", one a line.
cgroup_mounts() {
  # /proc/self/mountinfo: ... field 5 = mount point, 6 = mount options, then optional
  # fields up to "-", then the filesystem type, the source and the super options.
  awk '$5 ~ "^/sys/fs/cgroup(/|$)" {
         for (i = 7; i <= NF; i++) if ($i == "-") { print $5, $6, $(i + 1), $(i + 3); break }
       }' /proc/self/mountinfo
}

# "ro,cpu,cpuacct" -> "cpu,cpuacct": the super options without ro/rw (and without
# nsdelegate, which only the initial cgroup namespace may set).
mount_data() {
  tr ',' '\n' <<<"$1" | grep -v -x -E 'ro|rw|nsdelegate' | paste -s -d, - || true
}

# cgroup v1 (and the cgroup2 "unified" mount of a hybrid host): every read-only
# hierarchy is unmounted and mounted again read-write. Remounting in place fails
# ("mount point is busy"); a fresh mount in the node's own cgroup namespace shows
# the node's cgroup as its root, so the inner engine's cgroups nest under it.
fix_cgroup_v1() {
  local mountpoint options fstype super data
  while read -r mountpoint options fstype super; do
    [[ "$fstype" == cgroup || "$fstype" == cgroup2 ]] || continue
    [[ ",$options," == *",ro,"* ]] || continue
    data=$(mount_data "$super")
    umount "$mountpoint"
    if mount -t "$fstype" -o "rw${data:+,$data}" "$fstype" "$mountpoint"; then
      log "mounted $mountpoint read-write ($fstype ${data:-})"
    elif [[ "$fstype" == cgroup2 ]]; then
      # the unified hierarchy of a hybrid host: the v1 engine does not need it
      log "warning: could not mount $mountpoint read-write; leaving it out"
    else
      log "error: could not mount the cgroup hierarchy $mountpoint read-write"
      exit 1
    fi
  done < <(cgroup_mounts)
}

# cgroup v2 (the unified hierarchy at /sys/fs/cgroup): make it writable, move the
# processes of the root cgroup into a child ("no internal processes": a cgroup
# with processes cannot hand controllers to its children), then hand every
# controller to the children, so the inner engine's containers get cpu, memory,
# pids, ... limits. (kind's node has systemd do the moving.)
fix_cgroup_v2() {
  local root=/sys/fs/cgroup controller pid tries
  if [[ "$(cgroup_mounts | awk '$1 == "/sys/fs/cgroup" { print $2 }')" == ro* ]]; then
    if ! mount -o remount,rw "$root" 2>/dev/null; then
      umount "$root"
      mount -t cgroup2 -o rw cgroup2 "$root"
    fi
    log "mounted $root read-write (cgroup2)"
  fi
  mkdir -p "$root/init"
  for tries in 1 2 3 4 5; do
    [[ -s "$root/cgroup.procs" ]] || break
    while read -r pid; do
      echo "$pid" >"$root/init/cgroup.procs" 2>/dev/null || true
    done <"$root/cgroup.procs"
  done
  for controller in $(cat "$root/cgroup.controllers"); do
    echo "+$controller" >"$root/cgroup.subtree_control" 2>/dev/null \
      || log "warning: could not enable the $controller controller for child cgroups"
  done
  log "cgroup v2: controllers for child cgroups: $(cat "$root/cgroup.subtree_control")"
}

fix_cgroups() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    fix_cgroup_v2
  else
    fix_cgroup_v1
  fi
}

# Mount propagation for volumes of pods (harmless where it is not allowed).
fix_mount_propagation() {
  mount --make-rshared / 2>/dev/null || log "warning: could not make / rshared"
}

# The inner engine must program the same netfilter backend (legacy or nft) as the
# host's engine, whose rules for Docker's embedded DNS are already in this
# network namespace: use the backend that holds more rules (nft when none do).
select_iptables() {
  local legacy nft mode=nft
  legacy=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-' || true)
  nft=$( (timeout 5 iptables-nft-save; timeout 5 ip6tables-nft-save) 2>/dev/null | grep -c '^-' || true)
  if ((legacy > nft)); then
    mode=legacy
  fi
  update-alternatives --set iptables "/usr/sbin/iptables-$mode" >/dev/null
  update-alternatives --set ip6tables "/usr/sbin/ip6tables-$mode" >/dev/null
  log "iptables: $mode (rules seen: legacy $legacy, nft $nft)"
}

start_dockerd() {
  if [[ "${BOXKUBE_DOCKERD:-1}" == 0 ]]; then
    log "not starting dockerd (BOXKUBE_DOCKERD=0)"
    return
  fi
  mkdir -p /var/lib/docker
  if [[ "$(stat -f -c %T /var/lib/docker)" == overlayfs ]]; then
    log "warning: /var/lib/docker is on overlayfs; give the node a volume there (-v /var/lib/docker) so the inner engine can use overlay2"
  fi
  local timeout="${BOXKUBE_DOCKERD_TIMEOUT:-30}" pid deadline
  # shellcheck disable=SC2086 # BOXKUBE_DOCKERD_ARGS is a list of flags
  dockerd ${BOXKUBE_DOCKERD_ARGS:-} >/var/log/dockerd.log 2>&1 &
  pid=$!
  deadline=$(($(now_ms) + timeout * 1000))
  until [[ -S /var/run/docker.sock ]] && docker version >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "error: dockerd exited; the end of /var/log/dockerd.log:"
      tail -n 20 /var/log/dockerd.log >&2
      exit 1
    fi
    if (($(now_ms) > deadline)); then
      log "error: dockerd did not answer within ${timeout}s; the end of /var/log/dockerd.log:"
      tail -n 20 /var/log/dockerd.log >&2
      exit 1
    fi
    sleep 0.05
  done
  log "dockerd is ready ($(($(now_ms) - started_ms)) ms after the entrypoint started)"
}

fix_cgroups
fix_mount_propagation
select_iptables
start_dockerd

exec "$@"
