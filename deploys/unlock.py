"""Break a left-over host lock after a run died (Ctrl-C, lost connection):

    pyinfra inventories/prod.py deploys/unlock.py --limit <host>

Only when the run that holds the lock is really gone: the lock is what keeps a deploy and a
runbook from changing one host at the same time.
"""

from deploys.operations import lock

lock.force_release(name="Remove the host lock")
