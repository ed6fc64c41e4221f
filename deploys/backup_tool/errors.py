"""The one error type of the backup program: a failure with a message for the log.

Every failure (a pipe stage exiting non-zero, a full disk, bad credentials) is raised as
:class:`BackupError`; the CLI prints ``orderops-backup: <message>`` to stderr (the journal) and
exits 1.
"""


class BackupError(RuntimeError):
    """A backup, upload, prune or restore failed; ``str(error)`` says why (never a secret)."""
