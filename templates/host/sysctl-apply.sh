#!/bin/sh
# Managed by orderops (deploys/roles/hardening.py): apply the sysctl baseline file $1.
# On a real host every key is applied (sysctl -p). Inside a container /proc/sys is read-only
# and must stay so; only the keys of the container's own network namespace (net.ipv4.*,
# net.ipv6.*) are applied, through a fresh procfs in a private, throw-away mount namespace (the
# container's /proc/sys is never remounted). Every other key is skipped, and each skip logged
# (journal tag orderops-sysctl) with the reason.
set -u
file=${1:-/etc/sysctl.d/60-orderops-baseline.conf}
log() { echo "$*"; logger -t orderops-sysctl -- "$*" 2>/dev/null || true; }
ro=$(awk '$5 == "/proc/sys" {split($6, o, ","); print o[1]; exit}' /proc/self/mountinfo)
if [ "$ro" != "ro" ]; then
    exec sysctl -q -e -p "$file"
fi
keys=$(sed -n 's/^[[:space:]]*\([a-z0-9_.]*\)[[:space:]]*=[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/\1=\2/p' "$file")
net=""
for kv in $keys; do
    case "$kv" in
        net.ipv4.*|net.ipv6.*) net="$net $kv" ;;
        *) log "skipped ${kv%%=*}: /proc/sys is read-only in this container and the key is not namespaced (it belongs to the machine's kernel)" ;;
    esac
done
[ -n "$net" ] || exit 0
# shellcheck disable=SC2086
unshare --mount --propagation private sh -c 'mount -t proc proc /proc && sysctl -q -w "$@"' sh $net
rc=$?
[ $rc -eq 0 ] && log "applied $(echo $net | wc -w) namespaced net.* keys in the container's network namespace"
exit $rc
