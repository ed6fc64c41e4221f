#!/bin/sh
# Screenshot of a notebook opened in JupyterLab, taken by headless Chromium (Debian's package):
#   tools/notebook-screenshot.sh NOTEBOOK.ipynb OUT.png
# Needs `jupyter lab` in the venv (pip install jupyterlab; not a project dependency) and chromium.
# Serves on 127.0.0.1 only, without a token, for the lifetime of this script.
set -eu
nb=$(realpath "$1"); out=$(realpath -m "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT:-8998}
dir=$(mktemp -d); cp "$nb" "$dir/"; name=$(basename "$nb")
"$here/.venv/bin/jupyter-lab" --no-browser --ip=127.0.0.1 --port="$port" --IdentityProvider.token='' \
  --ServerApp.password='' --ServerApp.root_dir="$dir" --LabApp.news_url=None >"$dir/lab.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 60); do curl -fs "http://127.0.0.1:$port/lab" >/dev/null && break; sleep 1; done
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,1700 \
  --virtual-time-budget=40000 --screenshot="$out" "http://127.0.0.1:$port/lab/tree/$name" 2>/dev/null
echo "screenshot: $out"
