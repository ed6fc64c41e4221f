"""nginx configuration that is checked by ``nginx -t`` before it replaces the live one.

nginx runs in a container, so the check runs ``nginx -t`` in a throw-away container of the same
image (``docker run --rm --network none``) with the candidate file and the certificate
directories mounted where the live container has them. A refused candidate is removed, the live
file stays, and the operation fails with nginx's own message; warnings count as refusals (a
warning-free ``nginx -t`` is part of the contract, e.g. no OCSP stapling without an OCSP URL).
"""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand
from pyinfra.facts.files import File, Sha256File

from deploys.facts.cache import declares

__all__ = ["checked_config", "check_command"]


def check_command(candidate: str, image: str, config_path: str, mounts: dict[str, str]) -> StringCommand:
    """The shell command that runs ``nginx -t`` on ``candidate`` in ``image``.

    Exit 0 when nginx accepts it without a warning; otherwise prints nginx's output on stderr,
    removes ``candidate`` and exits 1.

    + candidate: host path of the file to check
    + image: the nginx image the live container runs
    + config_path: where the file sits inside the container (e.g. ``/etc/nginx/conf.d/default.conf``)
    + mounts: ``{host path: container path}`` mounted read-only as well (certificates)
    """
    volumes: list[object] = ["-v", QuoteString(f"{candidate}:{config_path}:ro")]
    for source, target in sorted(mounts.items()):
        volumes += ["-v", QuoteString(f"{source}:{target}:ro")]
    return StringCommand(
        "out=$(docker run --rm --network none", *volumes, "--entrypoint nginx", QuoteString(image), "-t 2>&1);",
        "rc=$?;",
        'if [ "$rc" -ne 0 ] || printf "%s" "$out" | grep -q "\\[warn\\]"; then',
        'printf "nginx -t refused the new configuration (live one kept):\\n%s\\n" "$out" >&2;',
        "rm -f", QuoteString(candidate), "; exit 1; fi",
    )


@declares(lambda a: [(File, {"path": a["dest"]}), (Sha256File, {"path": a["dest"]})])
@operation()
def checked_config(dest: str, content: str, image: str, config_path: str, mounts: dict[str, str] | None = None,
                   mode: str = "0644"):
    """
    Install an nginx config file only after ``nginx -t`` in ``image`` accepts it warning-free.

    + dest: live file on the host (bind-mounted into the nginx container via its directory)
    + content: the new file's text
    + image: nginx image to run ``nginx -t`` in (the live container's image)
    + config_path: path of the file inside the container
    + mounts: ``{host path: container path}`` the check needs as well (certificate directories)
    + mode: permissions of ``dest``

    The candidate is ``<dest>.candidate`` next to nothing nginx includes (``*.candidate``);
    ``mv`` makes the switch atomic. Fails, leaving ``dest`` untouched, with nginx's message.
    """
    wanted = hashlib.sha256(content.encode()).hexdigest()
    info = host.get_fact(File, path=dest)
    if info and host.get_fact(Sha256File, path=dest) == wanted and info.get("mode") == int(mode):
        host.noop(f"{dest} is up to date")
        return
    candidate = f"{dest}.candidate"
    yield FileUploadCommand(StringIO(content), candidate)  # via pyinfra's temp file (not secret)
    yield check_command(candidate, image, config_path, mounts or {})
    yield StringCommand("chmod", mode, QuoteString(candidate), "&&", "mv", "-f", QuoteString(candidate), QuoteString(dest))
