#!/usr/bin/env bash
# Installs and starts a real Docker engine and builds the base images the tests use.
# Idempotent: every step is skipped when its result is already there.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

start_dockerd() {
  if docker info >/dev/null 2>&1; then log "engine already answers"; return 0; fi
  log "starting dockerd"
  local driver=overlay2
  for attempt in 1 2; do
    nohup dockerd --iptables=false --storage-driver="$driver" >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 100); do
      docker info >/dev/null 2>&1 && { log "engine up ($driver)"; return 0; }
      kill -0 $! 2>/dev/null || break
      sleep 0.2
    done
    log "dockerd with $driver did not come up; trying vfs"
    kill $! 2>/dev/null || true
    driver=vfs
  done
  tail -20 /var/log/dockerd.log >&2
  return 1
}

# Builds a Debian minbase image with python3 (and FastAPI for HTTP-based envs),
# because no container registry is reachable from this machine.
build_base_image() {
  local tag="$1" include="$2"
  if docker image inspect "$tag" >/dev/null 2>&1; then log "$tag present"; return 0; fi
  local rootfs
  rootfs=$(mktemp -d /tmp/affinetes-rootfs.XXXXXX)
  log "debootstrap $tag (include: $include)"
  debootstrap --variant=minbase --include="$include" bookworm "$rootfs" >/tmp/debootstrap-"${tag//[:\/]/_}".log 2>&1
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["python3"]' - "$tag" >/dev/null
  rm -rf "$rootfs"
  log "$tag built"
}

apt_install docker.io debootstrap
start_dockerd
build_base_image affinetes/python:3.11 python3
build_base_image affinetes/python-fastapi:3.11 python3,python3-fastapi,python3-uvicorn
