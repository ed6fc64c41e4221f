#!/bin/bash
# Entrypoint of the orderops nginx stand-in: the documented behaviour of the official image's.
set -e

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

# Render /etc/nginx/templates/**/*.template into /etc/nginx/conf.d with envsubst, substituting
# only variables that are defined (nginx's own $variables stay untouched).
render_templates() {
    local template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
    local suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
    local output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
    local filter="${NGINX_ENVSUBST_FILTER:-}"
    [ -d "$template_dir" ] || return 0
    local defined_envs
    defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" < /dev/null))
    local template relative_path output_path subdir
    while IFS= read -r -d '' template; do
        relative_path="${template#"$template_dir/"}"
        output_path="$output_dir/${relative_path%"$suffix"}"
        subdir=$(dirname "$relative_path")
        mkdir -p "$output_dir/$subdir"
        entrypoint_log "$0: Running envsubst on $template to $output_path"
        envsubst "$defined_envs" < "$template" > "$output_path"
    done < <(find "$template_dir" -follow -type f -name "*$suffix" -print0)
}

if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    render_templates
    if [ -d /docker-entrypoint.d ]; then
        while IFS= read -r -d '' f; do
            case "$f" in
                *.sh)
                    if [ -x "$f" ]; then entrypoint_log "$0: Launching $f"; "$f"
                    else entrypoint_log "$0: Ignoring $f, not executable"; fi ;;
                *) entrypoint_log "$0: Ignoring $f" ;;
            esac
        done < <(find /docker-entrypoint.d/ -follow -type f -print0 | sort -z)
    fi
    entrypoint_log "$0: Configuration complete; ready for start up"
fi

exec "$@"
