"""Test deploy: install an sshd drop-in whose AllowGroups locks the deploy user out.

Used by tests/integration/test_sshd_rollback.py: the drop-in operation must notice it with its
fresh login probe and put the previous configuration back.
"""

from pyinfra import host

from deploys.operations import sshd
from deploys.roles.base import sshd_drop_in
from inventories.schema import settings_for

settings = settings_for(host).model_copy(update={"ssh_allow_groups": ("orderops-nobody",)})
sshd.drop_in(
    name="sshd drop-in that locks the deploy user out", filename="00-orderops.conf", content=sshd_drop_in(settings),
    probe_user=host.data.get("ssh_user") or settings.deploy_user,
)
