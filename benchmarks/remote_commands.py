"""Remote commands of a pyinfra run, counted from its ``--debug`` output.

    .venv/bin/python benchmarks/remote_commands.py [inventory] [--top N] [--repeat 5]

runs a no-change converge (``pyinfra -y --debug <inventory> deploys/site.py``, default inventory
``inventories/local.py``) and prints the number of remote commands per host and the most
repeated ones. ``--repeat N`` also times N no-change converges (without ``--debug``) paired with
N ``pyinfra -y <inventory> exec -- true`` (the connection + one command baseline), interleaved,
and prints both medians, their ratio (target <= 3) and the load average. Every remote command is one SSH exec (with sudo, one sudo round trip), so the count
is the deterministic part of a converge's wall time: ``tests/integration/test_deploy.py`` gates it,
``benchmarks/bench_converge.py`` prints it beside the timings.

What is counted: pyinfra 3.10's SSH connector logs each command it runs, at debug level, as

    [pyinfra.connectors.ssh] Running command on <host name>: (pty=False) <command>

(``pyinfra/connectors/ssh.py: SSHConnector.run_shell_command``; the command may span lines). A
sudo password retry would log a second line and counts as a second round trip. File transfers
(``Attempting upload of ...``) are not commands and are not counted; commands pyinfra runs on the
controller machine (the local connector's ``--> Running command on localhost:``) are not remote
and are not counted either.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# the SSH connector's line; `(pty=...)` sets it apart from the local connector's line
_COMMAND = re.compile(r"\[pyinfra\.connectors\.\w+\] Running command on (?P<host>\S+): \(pty=(?:True|False)\) (?P<command>.*)")
# pyinfra's sudo wrapper around every command: `sudo -H -n [-u user] sh -c '<command>'`
_SUDO = re.compile(r"^(?:env \S+ )*sudo(?: -u \S+| -\S+)* sh -c '")


def _commands(debug_output: str):
    """Yield ``(host name, command's first line)`` for each remote command in ``debug_output``."""
    for line in _ANSI.sub("", debug_output).splitlines():
        match = _COMMAND.search(line)
        if match:
            yield match["host"], match["command"]


def count_remote_commands(debug_output: str) -> dict[str, int]:
    """Number of remote commands per host in the combined stdout+stderr of ``pyinfra --debug``.

    Returns ``{host name: count}`` (inventory names, e.g. ``"orderops-1"``); a host that ran no
    command is absent. Colour codes are ignored. Never raises on unrelated text.
    """
    return dict(collections.Counter(host for host, _ in _commands(debug_output)))


def normalise(command: str) -> str:
    """A command's first line without pyinfra's sudo wrapper, shortened to 100 characters."""
    match = _SUDO.match(command)
    inner = command
    if match:
        inner = command[match.end() :]
        inner = inner[:-1] if inner.endswith("'") else inner
    return inner if len(inner) <= 100 else inner[:97] + "..."


def top_commands(debug_output: str, host: str | None = None, n: int = 15) -> list[tuple[str, int]]:
    """The ``n`` most frequent remote commands (normalised first lines) with their counts.

    ``host``: only that host's commands (default: every host's together). Sorted by count, then
    command; a command prefix like ``stat`` groups per distinct argument, so one-per-path facts show as
    many entries of count 1 and ``groups()`` gives the coarse picture.
    """
    counter = collections.Counter(normalise(cmd) for name, cmd in _commands(debug_output) if host in (None, name))
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:n]


def groups(debug_output: str, host: str | None = None) -> list[tuple[str, int]]:
    """Remote commands grouped by their first word (after the sudo wrapper, ``env``/``! `` skipped)."""
    counter: collections.Counter[str] = collections.Counter()
    for name, cmd in _commands(debug_output):
        if host not in (None, name):
            continue
        words = [w for w in normalise(cmd).replace("(", " ").split() if w not in ("!", "env", "export")]
        counter[words[0] if words else ""] += 1
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def converge_debug_output(inventory: str = "inventories/local.py", deploy: str = "deploys/site.py", *extra: str) -> str:
    """Run ``pyinfra -y --debug <inventory> <deploy>`` from the repository root; its stdout+stderr.

    Raises ``RuntimeError`` (with the output's tail) when pyinfra exits non-zero.
    """
    pyinfra = str(Path(sys.executable).with_name("pyinfra"))
    proc = subprocess.run(
        [pyinfra, "-y", "--debug", *extra, inventory, deploy],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pyinfra exited {proc.returncode}:\n" + "\n".join(proc.stdout.splitlines()[-30:]))
    return proc.stdout


def paired_timings(inventory: str, repeat: int) -> tuple[list[float], list[float]]:
    """``(converge seconds, exec -- true seconds)``, ``repeat`` of each, run alternately."""
    import time

    pyinfra = str(Path(sys.executable).with_name("pyinfra"))
    runs: dict[str, list[float]] = {"converge": [], "exec": []}
    argvs = {"converge": [pyinfra, "-y", inventory, "deploys/site.py"], "exec": [pyinfra, "-y", inventory, "exec", "--", "true"]}
    for _ in range(repeat):
        for what, argv in argvs.items():
            t0 = time.monotonic()
            proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
            runs[what].append(time.monotonic() - t0)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv[1:])} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return runs["converge"], runs["exec"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inventory", nargs="?", default="inventories/local.py")
    parser.add_argument("--top", type=int, default=15, help="how many repeated commands to show per host")
    parser.add_argument("--save", help="also write the debug output to this file")
    parser.add_argument("--repeat", type=int, default=0, help="also time N converges paired with N `exec -- true`")
    args = parser.parse_args(argv)
    output = converge_debug_output(args.inventory)
    if args.save:
        Path(args.save).write_text(output)
    counts = count_remote_commands(output)
    for host, count in sorted(counts.items()):
        print(f"{host}: {count} remote commands")
        print("  by first word: " + ", ".join(f"{word} {n}" for word, n in groups(output, host)))
        for command, n in top_commands(output, host, args.top):
            print(f"  {n:3d}  {command}")
    if args.repeat:
        import statistics

        converge, baseline = paired_timings(args.inventory, args.repeat)
        c, b = statistics.median(converge), statistics.median(baseline)
        print(f"no-change converge: median {c:.2f} s of {[round(x, 2) for x in converge]}")
        print(f"exec -- true:       median {b:.2f} s of {[round(x, 2) for x in baseline]}")
        print(f"ratio {c / b:.2f}x (target <= 3); load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
