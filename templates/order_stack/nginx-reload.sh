# Reload nginx and return once the new configuration answers; run inside the nginx container
# (`docker compose exec -T nginx sh -c "$(cat this)"`, deploys/roles/order_stack.py:
# nginx_reload_command). `nginx -s reload` only sends SIGHUP: the master then starts new
# workers and tells the old ones to stop accepting (their title becomes "worker process is
# shutting down"). This waits until every worker still titled "nginx: worker process" is one the
# reload started, so a request after it gets the new configuration (deploys/operations/web.py
# switches a release only then). Needs sh and /proc only; exit 1 when that does not happen in 30 s.
set -eu
master=$(cat /var/run/nginx.pid)
workers() {
    for stat in /proc/[0-9]*/stat; do
        pid=${stat#/proc/}; pid=${pid%/stat}
        read -r _ _ _ ppid _ 2>/dev/null < "$stat" || continue
        [ "$ppid" = "$master" ] || continue
        [ "$(tr -d '\000' 2>/dev/null < "/proc/$pid/cmdline")" = "nginx: worker process" ] && echo "$pid"
    done
    true
}
old=" $(workers | tr '\n' ' ')"
nginx -s reload
tries=0
while :; do
    now=$(workers)
    fresh=${now:+yes}
    for pid in $now; do
        case "$old" in *" $pid "*) fresh= ;; esac
    done
    [ -n "$fresh" ] && exit 0
    tries=$((tries + 1))
    if [ "$tries" -ge 300 ]; then
        echo "nginx-reload: the reloaded configuration did not take over within 30 s" >&2
        exit 1
    fi
    sleep 0.1
done
