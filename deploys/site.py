"""The main deploy: bare Ubuntu 22.04/24.04 or Debian 12 hosts -> production order hosts.

    pyinfra inventories/prod.py deploys/site.py

Roles run in dependency order; every role is idempotent, so a second run reports no change.
Every host takes the per-host lock first and releases it last, so two runs (deploys or
runbooks) never change one host at once.

==================  =======================  ===========================================
role                hosts                    what
==================  =======================  ===========================================
lock                all                      per-host run lock (deploys/operations/lock.py)
base                all                      apt lock wait, packages, time, deploy user, sshd drop-in
hardening           all                      sysctl baseline, no core dumps, umask
firewall            all                      ufw + DOCKER-USER: only the allowed ports, v4 and v6
docker              app, monitoring          Docker Engine + Compose v2, log rotation
fail2ban            app                      jails: sshd (INPUT), refused API logins (DOCKER-USER)
images              app                      stack images by registry or archive
tls                 app                      nginx's certificate (self-signed, or certbot + placeholder)
order_stack         app                      compose project, healthy
acme certificate    app                      tls_mode acme: certbot certonly --webroot when needed
controller access   app                      the controller host's SSH key authorised
backups             app                      backup program, config, timer (deploys/roles/backups.py)
controller          controller               runbook tooling, inventory, key, timers
monitoring          monitoring, app          Prometheus, Alertmanager, exporters, Loki, Alloy, Grafana (on an app
                                             host monitored from its own monitoring host: exporters + Alloy)
==================  =======================  ===========================================
"""

from pyinfra import host

from deploys.contract.paths import UPLOAD_DIR
from deploys.facts import cache
from deploys.facts.release import RunningRelease
from deploys.operations import lock
from deploys.roles.backups import backups
from deploys.roles.base import base
from deploys.roles.controller import authorise_controller, controller
from deploys.roles.docker_engine import docker
from deploys.roles.fail2ban import fail2ban
from deploys.roles.firewall import firewall
from deploys.roles.hardening import hardening
from deploys.roles.images import images
from deploys.roles.monitoring import monitoring
from deploys.roles.order_stack import effective_settings, order_stack
from deploys.roles.tls import acme_certificate, tls
from inventories.schema import InventoryError, settings_for

try:
    settings = settings_for(host)  # names host and field before any operation runs
except InventoryError as error:
    raise SystemExit(f"orderops: {error}") from None

cache.install(host)  # one read per fact until the host changes; pyinfra's file facts batched
lock.release_on_failure()
lock.acquire(name="Take the host lock", ttl=settings.lock_ttl)

base(settings)
hardening(settings)
firewall(settings)

if "app" in settings.groups:
    # inventory or the release recorded by the emergency-redeploy runbook: one rule, and it says which won
    settings, version = effective_settings(settings, host.get_fact(RunningRelease))
    host.log(f"order service {version.ref} (from {version.source}: {version.reason})")
    docker(settings, upload_dir=UPLOAD_DIR)
    fail2ban(settings)
    images(settings, upload_dir=UPLOAD_DIR)
    certificate = tls(settings)
    order_stack(settings, upload_dir=UPLOAD_DIR, certificate_op=certificate)
    acme_certificate(settings)
    authorise_controller(settings)
    backups(settings, upload_dir=UPLOAD_DIR)

if settings.monitoring_part == "server":  # a monitoring host of its own: Docker first
    docker(settings, upload_dir=UPLOAD_DIR)
if settings.monitoring_part is not None:  # all (single layout), server, or an app host's agent part
    monitoring(settings, upload_dir=UPLOAD_DIR)

if "controller" in settings.groups:
    controller(settings, upload_dir=UPLOAD_DIR)

lock.release(name="Release the host lock")
