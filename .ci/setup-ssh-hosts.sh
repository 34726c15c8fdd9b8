#!/usr/bin/env bash
# Starts two "remote" Docker hosts on this machine, as in shared/notes/machine.md: each
# is its own dockerd (own bridge, data and socket) behind its own sshd on a loopback
# address, with DOCKER_HOST set for SSH sessions; and a third sshd (d) on c's engine for
# the deploy tests. Idempotent: what runs is left alone. tmux and rsync too (deploy jobs,
# bench:deploy).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

apt_install openssh-server iproute2 docker.io tmux rsync

# This machine's ~/.bashrc runs `pyenv rehash` in every SSH session: a lock left by a killed
# one makes every later login wait 60 s. None runs now, so any lock is stale.
pgrep -f pyenv-rehash >/dev/null || rm -f ~/.pyenv/shims/.pyenv-shim

mkdir -p /run/sshd ~/.ssh
chmod 700 ~/.ssh
ssh-keygen -A >/dev/null
[ -f ~/.ssh/id_ed25519 ] || ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/id_ed25519
touch ~/.ssh/authorized_keys ~/.ssh/known_hosts
grep -qF "$(cat ~/.ssh/id_ed25519.pub)" ~/.ssh/authorized_keys || cat ~/.ssh/id_ed25519.pub >> ~/.ssh/authorized_keys
chmod 600 ~/.ssh/authorized_keys

# name  ssh address  engine socket: an sshd on a loopback address whose sessions talk to
# that engine (DOCKER_HOST)
start_sshd() {
  local name="$1" address="$2" sock="$3"
  if ! ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=2 -p 2222 "root@$address" true 2>/dev/null; then
    log "starting sshd $name on $address:2222"
    /usr/sbin/sshd -p 2222 -o "ListenAddress=$address" -o PermitRootLogin=prohibit-password \
      -o "SetEnv=DOCKER_HOST=unix://$sock" -o "PidFile=/run/sshd-$name.pid"
  fi
  if ! ssh-keygen -F "[$address]:2222" >/dev/null; then
    for _ in $(seq 1 50); do ssh-keyscan -p 2222 "$address" 2>/dev/null >>~/.ssh/known_hosts && break; sleep 0.1; done
  fi
  ssh -o BatchMode=yes -p 2222 "root@$address" docker info --format '{{.Name}}' >/dev/null
  log "host $name ready: ssh://root@$address:2222 (engine $sock)"
}

# name  ssh address  bridge address: its own dockerd, behind its own sshd
start_host() {
  local name="$1" address="$2" bridge_cidr="$3"
  local bridge="br-host$name" sock="/run/docker-$name.sock"
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$bridge_cidr" dev "$bridge"
  fi
  ip link set "$bridge" up
  if ! docker -H "unix://$sock" info >/dev/null 2>&1; then
    log "starting dockerd $name"
    nohup dockerd --iptables=false --storage-driver=overlay2 --bridge="$bridge" \
      --data-root "/var/lib/docker-$name" --exec-root "/run/docker-$name" \
      -H "unix://$sock" --pidfile "/run/docker-$name.pid" >"/var/log/dockerd-$name.log" 2>&1 &
    for _ in $(seq 1 100); do docker -H "unix://$sock" info >/dev/null 2>&1 && break; sleep 0.2; done
    docker -H "unix://$sock" info >/dev/null 2>&1 || { tail -20 "/var/log/dockerd-$name.log" >&2; return 1; }
  fi
  start_sshd "$name" "$address" "$sock"
}

start_host b 127.0.0.2 172.30.0.1/24
start_host c 127.0.0.3 172.31.0.1/24
# d: an sshd of its own on c's engine, for the deploy tests (no test kills its sshd)
start_sshd d 127.0.0.4 /run/docker-c.sock
