"""Transports behind the one :class:`~runbooks.core.types.Executor` seam (ansible-runner,
pyinfra, local, fake); their shared types live in :mod:`runbooks.core`."""
