"""``pyinfra --dry`` changes nothing, anywhere (issue 8, section 2).

Without ``-y`` pyinfra runs every operation body once to plan (change detection) and again to
execute; ``--dry`` runs only the planning pass. Every side effect of the deploy (the host lock, the
``docker save`` archives, the controller's wheelhouse and SSH key) runs when pyinfra executes, so:

* on a freshly started, never-deployed test host of its own (harness prefix ``<prefix>-dry``, its
  own state dir, ports beside the tier's), ``pyinfra --dry --json <local inventory>
  deploys/site.py`` succeeds with a plan (facts of tools not yet installed read as absent), leaves
  path, type, mode, owner and sha256 of every file under ``/etc``, ``/var/lib`` and ``/opt`` as they
  were (but :data:`ALLOWED_TO_CHANGE`), and writes nothing in the controller machine's state dir
  (``.orderops/`` of that harness, the cache inside it included: no wheelhouse, no image archive,
  no controller key);
* against the tier's shared, deployed host, a dry run takes no lock (none appears while it plans,
  none is left), and inside a run that holds the lock (``$ORDEROPS_RUN_ID``, as the daily
  runbook's drift check runs it) the lock is neither renewed nor released.

Read-only for the shared host (it sorts after test_deploy.py, which converges it, and before the
suites that change it); the fresh host costs a container start and one dry run, no deploy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploys.contract.lock import acquire_command, force_release_command
from deploys.contract.paths import LOCK_FILE, local_state_dir
from tests.integration.conftest import INVENTORY, ROOT, ssh

pytestmark = pytest.mark.integration

# Next to the tier's harness and test_harness.py's (prefix "-it", offset +100), never on their names.
PREFIX = os.environ.get("ORDEROPS_HOST_PREFIX", "orderops") + "-dry"
_BASE_OFFSET = int(os.environ.get("ORDEROPS_PORT_OFFSET", "0"))
PORT_OFFSET = _BASE_OFFSET + 150 if _BASE_OFFSET + 150 <= 358 else _BASE_OFFSET - 150

#: Paths under /etc, /var/lib, /opt that change on a test host without any deploy, matched as
#: prefixes: each with the reason. Everything else must be byte-for-byte (and mode/owner) the same.
ALLOWED_TO_CHANGE = {
    # sudo's per-user timestamp records: every `sudo` of a login (pyinfra's facts, this test's own
    # snapshot) rewrites them
    "/var/lib/sudo/ts/": "sudo timestamp of each login's sudo",
    # systemd's persistent timers record when they last fired (apt-daily, logrotate, ...): time passing
    "/var/lib/systemd/timers/": "timers firing as time passes",
    # logrotate's daily timer writes its state when it fires
    "/var/lib/logrotate/": "logrotate's timer firing as time passes",
    # apt's daily timers (apt-daily, apt-daily-upgrade) stamp their runs
    "/var/lib/apt/periodic/": "apt's daily timers as time passes",
}

#: Python run with sudo on the host: one JSON line per path (type, mode, owner, sha256 or link target).
_SNAPSHOT = r"""
import hashlib, json, os, pwd, grp, stat, sys
out = {}
def name(f, i):
    try: return f(i)[0]
    except KeyError: return str(i)
for top in ("/etc", "/var/lib", "/opt"):
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            try: st = os.lstat(p)
            except FileNotFoundError: continue
            kind, extra = "other", ""
            if stat.S_ISDIR(st.st_mode): kind = "dir"
            elif stat.S_ISLNK(st.st_mode): kind, extra = "link", os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                kind, h = "file", hashlib.sha256()
                try:
                    with open(p, "rb") as f:
                        for b in iter(lambda: f.read(1 << 20), b""): h.update(b)
                    extra = h.hexdigest()
                except OSError as e: extra = "unreadable:" + e.__class__.__name__
            out[p] = [kind, oct(stat.S_IMODE(st.st_mode)), name(pwd.getpwuid, st.st_uid) + ":" + name(grp.getgrgid, st.st_gid), extra]
json.dump(out, sys.stdout, sort_keys=True)
"""


def host_snapshot(data: dict) -> dict[str, list[str]]:
    """``{path: [type, mode, user:group, sha256 | link target]}`` of every path under /etc, /var/lib, /opt."""
    proc = ssh(data, "sudo -n python3 -c " + _shell_quote(_SNAPSHOT))
    return json.loads(proc.stdout)


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def changed_paths(before: dict, after: dict) -> list[str]:
    """Paths added, removed or changed between two snapshots, but those of :data:`ALLOWED_TO_CHANGE`."""
    paths = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    return [p for p in paths if not any(p.startswith(prefix) for prefix in ALLOWED_TO_CHANGE)]


def local_listing(root: Path) -> dict[str, tuple]:
    """``{relative path: (type, mode, mtime_ns, sha256 | link target)}`` of everything under ``root``."""
    out: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if p.is_symlink():
            out[str(p.relative_to(root))] = ("link", st.st_mode, st.st_mtime_ns, os.readlink(p))
        elif p.is_dir():
            out[str(p.relative_to(root))] = ("dir", st.st_mode, st.st_mtime_ns, "")
        else:
            out[str(p.relative_to(root))] = ("file", st.st_mode, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def dry_run(env: dict, inventory: str = INVENTORY) -> tuple[subprocess.Popen, list[str]]:
    """Start ``pyinfra --dry --json <inventory> deploys/site.py`` (no ``-y``: the planning pass runs
    every operation body); returns the process."""
    return subprocess.Popen(
        [sys.executable, "-m", "pyinfra", "--dry", "--json", inventory, "deploys/site.py"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 900) -> dict:
    """Wait for a :func:`dry_run`; assert it succeeded; return its JSON (``plan``, ``results``)."""
    out, err = proc.communicate(timeout=timeout)
    sys.stdout.write(err[-6000:])  # shown by pytest on failure
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out)


def planned(result: dict, host: str) -> list[str]:
    """Names of the operations the plan says would change ``host``."""
    return [op["name"] for op in result["plan"] if host in op["hosts_with_change"]]


@pytest.fixture(scope="module")
def fresh_host(tmp_path_factory):
    """A freshly started, never-deployed test host in a state dir of its own: ``(env, name, data)``.

    The host is started with the shared image cache; the dry run gets a cache inside the state dir
    that does not exist yet, so a wheelhouse or image archive made by it would show in the listing.
    """
    state = tmp_path_factory.mktemp("dry-state")
    shutil.copy(local_state_dir() / "images.json", state / "images.json")  # the tier's built image refs
    cache = os.environ.get("ORDEROPS_CACHE_DIR", str(local_state_dir() / "cache"))
    env = {"ORDEROPS_STATE_DIR": str(state), "ORDEROPS_HOST_PREFIX": PREFIX, "ORDEROPS_PORT_OFFSET": str(PORT_OFFSET)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "testhosts", *args], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, **env, "ORDEROPS_CACHE_DIR": cache}, timeout=900)
        sys.stdout.write(proc.stderr[-4000:])
        return proc

    try:
        proc = cli("up", "-n", "1", "--layout", "single", "--timeout", "180")
        assert proc.returncode == 0, proc.stderr[-3000:]
        [(name, data)] = _fresh_inventory(env)
        yield {**env, "ORDEROPS_CACHE_DIR": str(state / "cache")}, name, data
    finally:
        cli("down")
        images_json = state / "images.json"
        if images_json.exists():  # the key-specific target tag of this throwaway state dir
            target = json.loads(images_json.read_text()).get("target")
            if target:
                subprocess.run(["docker", "rmi", target], capture_output=True)


def _fresh_inventory(env: dict) -> list[tuple[str, dict]]:
    """The fresh harness's inventory (inventories/local.py reads ``$ORDEROPS_STATE_DIR``), loaded in a child
    process so this process's own state dir stays the tier's."""
    code = ("import json, sys; from pathlib import Path; from inventories.loader import load_hosts; "
            "hs = load_hosts(Path(sys.argv[1]), cwd=Path(sys.argv[2])); "
            "print(json.dumps([[h.name, {k: v for k, v in h.data.items() if isinstance(v, (str, int, bool))}] for h in hs]))")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "inventories/local.py"), str(ROOT)], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return [tuple(h) for h in json.loads(proc.stdout)]


def test_dry_run_on_a_fresh_host_plans_and_changes_nothing(fresh_host):
    env, name, data = fresh_host
    state = Path(env["ORDEROPS_STATE_DIR"])
    host_before, local_before = host_snapshot(data), local_listing(state)
    assert "/var/lib/orderops" not in host_before and not (state / "keys" / "controller_ed25519").exists()

    started = time.monotonic()
    result = finish(dry_run(env, "inventories/local.py"))
    seconds = time.monotonic() - started

    host_after, local_after = host_snapshot(data), local_listing(state)
    allowed = sorted(p for p in host_before.keys() | host_after.keys() if host_before.get(p) != host_after.get(p))
    print(f"changed on the host (allow-listed or not): {allowed}")
    assert changed_paths(host_before, host_after) == [], "the dry run changed the host"
    assert local_after == local_before, "the dry run wrote in the controller machine's state dir"
    assert not (state / "cache").exists()
    plan = planned(result, name)
    assert result["results"] is None
    # a plan of a whole first deploy: packages, the stack's images by ID, the controller's tooling by key
    for op in ("Stack images (archive)", "Build the runbook wheelhouse (controller machine)",
               "Generate the controller SSH key (controller machine)", "Controller SSH key"):
        assert any(op in p for p in plan), (op, plan)
    assert not any("host lock" in p for p in plan), plan  # bookkeeping, never a change
    print(f"dry run of a first deploy: {len(plan)} operations planned in {seconds:.1f} s")


def _lock_line(data: dict) -> str:
    return ssh(data, f"sudo -n sh -c 'cat {LOCK_FILE} 2>/dev/null; stat -c %Y {LOCK_FILE} 2>/dev/null; true'").stdout


def test_dry_run_on_the_deployed_host_takes_no_lock(app_host):
    _, data = app_host
    assert _lock_line(data) == "", "a lock is left on the shared host before the test"
    seen: list[str] = []
    proc = dry_run({})
    stop = threading.Event()

    def watch():
        while not stop.is_set() and proc.poll() is None:
            line = _lock_line(data)
            if line:
                seen.append(line)
            time.sleep(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        finish(proc)
    finally:
        stop.set()
        watcher.join(timeout=60)
    assert seen == [], f"a lock appeared while the dry run planned: {seen[:1]}"
    assert _lock_line(data) == ""


def test_dry_run_inside_a_locked_run_keeps_that_lock(app_host):
    """As the daily runbook's drift check: the runbook holds the lock, its dry run (same run ID)
    neither renews nor releases it."""
    _, data = app_host
    run_id = f"dry-test-{os.getpid()}"
    ssh(data, "sudo -n " + acquire_command(run_id, 600, "test_dry@tier"))
    try:
        before = _lock_line(data)
        assert before.startswith(run_id), before
        time.sleep(1.1)  # a renewal would write a new mtime (seconds)
        finish(dry_run({"ORDEROPS_RUN_ID": run_id}))
        assert _lock_line(data) == before
    finally:
        ssh(data, "sudo -n " + force_release_command(), check=False)
