#!/bin/sh
# make prereqs: install the Debian packages of tools/packages.txt that are missing, and start a
# Docker daemon when none answers. Idempotent; seconds when everything is there.
# Needs root on Debian 12 (or another apt-based system). POSIX sh: runs before anything else exists.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
state=${ORDEROPS_STATE_DIR:-$(cd "$here/.." && pwd)/.orderops}
list=$here/packages.txt

die() { echo "prereqs: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (apt-get and dockerd); run as root or with sudo"
command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1 \
  || die "needs a Debian-like system with apt-get (found none); see README 'Prerequisites'"

missing=""
while read -r pkg why; do
  case "$pkg" in ''|'#'*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    echo "prereqs: installing $pkg ($why)"
    missing="$missing $pkg"
  fi
done < "$list"
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || die "apt-get install failed for:$missing"
fi

# Node.js builds the front end (order_service/web); Next.js needs >= 20.9. Debian 12 ships 18,
# so it is not in packages.txt: install Node.js 20+ (e.g. NodeSource's apt repository).
node_version=$(node --version 2>/dev/null || true)
case "$node_version" in
  v[0-9]*) ;;
  *) die "Node.js not found: the front end needs Node.js >= 20.9 (node --version)" ;;
esac
node_major=$(echo "$node_version" | sed 's/^v\([0-9]*\)\..*/\1/')
node_minor=$(echo "$node_version" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/')
if [ "$node_major" -lt 20 ] || { [ "$node_major" -eq 20 ] && [ "$node_minor" -lt 9 ]; }; then
  die "Node.js $node_version is too old: Next.js needs >= 20.9"
fi

if ! docker info >/dev/null 2>&1; then
  mkdir -p "$state"
  if [ -d /run/systemd/system ]; then
    echo "prereqs: starting docker.service (systemd)"
    systemctl start docker || die "systemctl start docker failed; see journalctl -u docker"
  else
    echo "prereqs: starting dockerd (no systemd; log: $state/dockerd.log)"
    # its own session, so it outlives make and this shell
    setsid dockerd >"$state/dockerd.log" 2>&1 < /dev/null &
    pid=$!
  fi
  i=0
  until docker info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ -n "${pid:-}" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -5 "$state/dockerd.log" >&2 2>/dev/null
      die "dockerd exited at start (log: $state/dockerd.log)"
    fi
    [ "$i" -le 60 ] || { tail -5 "$state/dockerd.log" >&2 2>/dev/null; die "Docker daemon did not answer within 60 s"; }
    sleep 1
  done
fi
