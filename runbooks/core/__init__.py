"""The layer below both the engine and the executors: shared types, errors, process groups.

Imports point down only::

    runbooks.cli ──► runbooks.engine ──► runbooks.core ◄── runbooks.executors
                          │                                   ▲
                          └──── (executors are passed in) ────┘

``runbooks.core`` imports nothing else of ``runbooks`` (and nothing of ``deploys``).
"""
