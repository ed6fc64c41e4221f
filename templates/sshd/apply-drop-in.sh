#!/bin/sh
# Managed by orderops (deploys/operations/sshd.py): install a staged sshd drop-in safely.
#   orderops-sshd-apply DEST STAGED SERVICE PROBE_USER
# 1. `sshd -t` on the new file (rejected: previous file restored, sshd untouched);
# 2. reload sshd;
# 3. a fresh SSH login as PROBE_USER to 127.0.0.1 with a one-time key, authorised only from
#    loopback and only to run one fixed command; when it fails the previous file is restored
#    and sshd reloaded again, so a setting that locks the deploy user out never stays.
set -u
dest=$1 staged=$2 service=$3 user=$4
old="$dest.orderops-old"
restore() {
    if [ -e "$old" ]; then mv "$old" "$dest"; else rm -f "$dest"; fi
}
if [ -e "$dest" ]; then cp -p "$dest" "$old"; else rm -f "$old"; fi
chmod 0644 "$staged" && mv "$staged" "$dest" || exit 1

if ! out=$(sshd -t 2>&1); then
    restore
    echo "orderops: sshd -t rejected the new configuration: $out" >&2
    exit 1
fi
if ! systemctl reload "$service"; then
    restore; systemctl reload "$service"
    echo "orderops: systemctl reload $service failed; previous sshd configuration restored" >&2
    exit 1
fi

probe() {
    tmp=$(mktemp -d) || return 1
    token="orderops-login-probe-$(basename "$tmp")"
    home=$(getent passwd "$user" | cut -d: -f6)
    group=$(id -gn "$user")
    keys="$home/.ssh/authorized_keys"
    port=$(sshd -T 2>/dev/null | awk '$1 == "port" {print $2; exit}')
    ssh-keygen -q -t ed25519 -N '' -C "$token" -f "$tmp/key" || { rm -rf "$tmp"; return 1; }
    install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"
    [ -e "$keys" ] || install -m 0600 -o "$user" -g "$group" /dev/null "$keys"
    printf 'from="127.0.0.1,::1",restrict,command="echo orderops-login-ok" %s\n' "$(cat "$tmp/key.pub")" >> "$keys"
    # the host's own keys in force (sshd -T hostkey lines): the probe checks the key it is offered
    for hostkey in $(sshd -T 2>/dev/null | awk '$1 == "hostkey" {print $2}'); do
        [ -r "$hostkey.pub" ] && printf 'orderops-self %s\n' "$(cut -d' ' -f1,2 "$hostkey.pub")"
    done > "$tmp/known_hosts"
    result=1
    for attempt in 1 2 3 4 5; do
        got=$(ssh -n -i "$tmp/key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
              -o HostKeyAlias=orderops-self -o UserKnownHostsFile="$tmp/known_hosts" -o ConnectTimeout=10 -o LogLevel=ERROR \
              -p "${port:-22}" "$user@127.0.0.1" true 2>&1)
        case "$got" in *orderops-login-ok*) result=0; break ;; esac
        sleep 1   # sshd re-executes itself on reload; give it a moment
    done
    sed -i "/ $token\$/d" "$keys"
    rm -rf "$tmp"
    [ $result -eq 0 ] || echo "$got"
    return $result
}

if ! out=$(probe); then
    restore
    sshd -t && systemctl reload "$service"
    echo "orderops: a fresh SSH login as $user failed after the reload ($out); previous sshd configuration restored" >&2
    exit 1
fi
rm -f "$old"
