# Shared helpers of the .ci scripts. Source it; do not run it.

log() { printf '[%s] %s\n' "$(basename "${0%.sh}")" "$*" >&2; }

_apt_updated=0
# Installs the Debian packages that are missing; does nothing when all are there.
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$_apt_updated" -eq 0 ]; then apt-get update -qq; _apt_updated=1; fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
