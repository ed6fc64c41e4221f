"""The stack's ``.env`` files: how a secret is written into one and read back out of one.

Compose reads them for interpolation (compose-go's dotenv parser); the helper scripts on the host
read single values with :func:`dotenv_read_command`. Both see every printable character, quotes,
backslash, ``$``, backtick, ``#``, space and non-ASCII letters included (issue 10).
"""

from __future__ import annotations

import shlex

__all__ = ["dotenv_quote", "dotenv_read_command"]


def dotenv_quote(value: str) -> str:
    r"""``value`` as a double-quoted ``.env`` value that Compose reads back unchanged.

    Compose's dotenv parser (compose-go) unescapes ``\\`` ``\"`` ``\$`` (and ``\n`` etc.)
    inside double quotes and interpolates a bare ``$``; escaping backslash first, then ``"`` and
    ``$`` leaves every other printable character literal (checked with ``docker compose config``
    2.26 on a test host: ``\```, by contrast, stays two characters). Single quotes cannot hold a
    ``'`` at all. Not for ``sh``: a backtick in double quotes is command substitution there, so
    scripts read a value with :func:`dotenv_read_command`, never ``. .env``.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


#: Python (stdlib) that prints variable argv[2] of .env file argv[1], the inverse of dotenv_quote.
_DOTENV_READ = (
    'import re,sys\n'
    'for line in open(sys.argv[1], encoding="utf-8"):\n'
    '    k, _, v = line.rstrip("\\n").partition("=")\n'
    '    if k == sys.argv[2]:\n'
    '        v = v[1:-1] if len(v) >= 2 and v[0] == v[-1] == chr(34) else v\n'
    '        sys.stdout.write(re.sub(r"\\\\(.)", r"\\1", v))\n'
    '        break\n'
)


def dotenv_read_command(env_file: str, name: str) -> str:
    """Shell command printing ``name``'s value from ``env_file`` (written by :func:`env_text` or the
    monitoring role) byte for byte, nothing when absent; python3 reads the file, so the value is
    never on a command line and never evaluated by a shell."""
    return shlex.join(["python3", "-c", _DOTENV_READ, env_file, name])
