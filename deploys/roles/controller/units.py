"""systemd units of the scheduled runbooks: ``orderops-runbook-<name>.service`` + ``.timer`` per entry
of inventory ``runbook_schedules`` (calendar from inventory data, ``Persistent=true``); timers of
runbooks no longer scheduled are stopped and removed."""

from __future__ import annotations

import io

from pyinfra import host
from pyinfra.facts.server import Command

from deploys.contract.paths import RUNBOOK_UNIT_PREFIX, RunbookLayout
from deploys.operations.prefetched import files, systemd
from inventories.schema import HostSettings
from templates import render

__all__ = ["unit_texts", "runbook_units", "UNIT_DIR", "RUN_TIMEOUT"]

#: where the units are written
UNIT_DIR = "/etc/systemd/system"
#: seconds a scheduled run may take (``TimeoutStartSec``)
RUN_TIMEOUT = 3600


def unit_texts(settings: HostSettings, name: str, calendar: str, home: str) -> tuple[str, str]:
    """``(service, timer)`` unit texts of one scheduled runbook."""
    layout = RunbookLayout(settings.runbook_dir)
    service = render(
        "runbooks/runbook.service.j2", runbook=name, user=settings.deploy_user, root=layout.root, home=home,
        runbook_cli=layout.runbook_cli, inventory=layout.inventory, state_dir=layout.state_dir,
        textfile_dir=settings.runbook_textfile_dir, webhook_url=settings.runbook_webhook_url or "",
        args=settings.runbook_schedule_args.get(name, []), timeout=RUN_TIMEOUT,
    )
    timer = render("runbooks/runbook.timer.j2", runbook=name, calendar=calendar, unit=f"{RUNBOOK_UNIT_PREFIX}{name}.service")
    return service, timer


def runbook_units(settings: HostSettings, home: str) -> None:
    """Operations (inside the controller deploy): write, enable and start one timer per scheduled
    runbook; stop and remove those no longer scheduled."""
    unit_ops = []
    for name, calendar in sorted(settings.runbook_schedules.items()):
        service, timer = unit_texts(settings, name, calendar, home)
        for suffix, text in (("service", service), ("timer", timer)):
            unit = f"{RUNBOOK_UNIT_PREFIX}{name}.{suffix}"
            unit_ops.append(files.put(name=f"Unit {unit}", src=io.StringIO(text), dest=f"{UNIT_DIR}/{unit}", mode="644"))
    # timers of runbooks no longer scheduled (removing one is a data change too)
    present = (host.get_fact(Command, f"ls {UNIT_DIR}/ | grep -E '^{RUNBOOK_UNIT_PREFIX}.*[.]timer$' || true") or "").split()
    for unit in sorted(present):
        name = unit[len(RUNBOOK_UNIT_PREFIX):-len(".timer")]
        if name not in settings.runbook_schedules:
            systemd.service(name=f"Stop timer of unscheduled runbook {name}", service=unit, running=False, enabled=False)
            for suffix in ("timer", "service"):
                unit_ops.append(files.file(name=f"Remove {RUNBOOK_UNIT_PREFIX}{name}.{suffix}",
                                           path=f"{UNIT_DIR}/{RUNBOOK_UNIT_PREFIX}{name}.{suffix}", present=False))

    def units_changed() -> bool:
        return any(op.did_change() for op in unit_ops)

    systemd.daemon_reload(name="systemd reloads changed runbook units", _if=units_changed)
    for name in sorted(settings.runbook_schedules):
        timer = f"{RUNBOOK_UNIT_PREFIX}{name}.timer"
        systemd.service(name=f"Timer of runbook {name}", service=timer, running=True, enabled=True)
        systemd.service(name=f"Restart timer of runbook {name} for a new calendar", service=timer,
                        restarted=True, _if=units_changed)
