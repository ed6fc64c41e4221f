"""Grafana stand-in (contract of the official grafana/grafana 11 image; test images only).

Commands (``/run.sh`` is the image's entrypoint, as in the official image)::

    /run.sh | grafana server | grafana-server          start the server
    grafana cli admin reset-admin-password [--password-from-stdin] [<password>]
    grafana --version | grafana-server -v

Settings from GF_* variables (defaults of the official image): ``GF_SERVER_HTTP_PORT`` (3000),
``GF_SERVER_ROOT_URL``, ``GF_SERVER_SERVE_FROM_SUB_PATH``, ``GF_PATHS_DATA`` (/var/lib/grafana),
``GF_PATHS_PROVISIONING`` (/etc/grafana/provisioning), ``GF_SECURITY_ADMIN_USER`` (admin),
``GF_SECURITY_ADMIN_PASSWORD`` (admin; ``__FILE`` suffix supported), ``GF_AUTH_ANONYMOUS_ENABLED``
(false), ``GF_USERS_ALLOW_SIGN_UP`` (false), ``GF_AUTH_DISABLE_LOGIN_FORM`` (false).

Like real Grafana, the admin user and password are written to ``<data>/grafana.db`` (sqlite) only
when the database is created: on an existing database GF_SECURITY_ADMIN_PASSWORD is ignored, and
only ``grafana cli admin reset-admin-password`` (or the API with the current password) changes it.

Provisioning (``<provisioning>/datasources/*.yaml``, ``<provisioning>/dashboards/*.yaml`` providers
of ``type: file``) is loaded at start; an invalid file makes the server exit 1 logging
``logger=provisioning level=error msg="Failed to provision" error=...`` (checks: apiVersion 1; name and
type required; access proxy|direct; unique names and uids; at most one isDefault; http(s) url;
provider name, type file and an existing options.path; dashboards parse as JSON, have a title, unique
uids). ``$VAR``/``${VAR}`` are expanded in provisioning files.

API: ``GET /api/health``, ``/metrics``, ``POST /login`` (JSON user/password), and with basic auth (or a
session cookie from /login): ``/api/user``, ``PUT /api/user/password``, ``/api/org``, ``/api/search``,
``/api/datasources``, ``/api/datasources/name/<n>``, ``/api/datasources/uid/<u>``,
``/api/dashboards/uid/<uid>``, ``/api/frontend/settings``; ``POST /api/user/signup`` is refused unless
sign-up is on. Unauthenticated requests get 401 ``{"message": "Unauthorized"}`` unless anonymous access is on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from standins.common import expand_env, log, serve, wait_forever, Metrics

VERSION = "11.5.2-orderops-standin"


class ProvisioningError(ValueError):
    pass


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def _env(name: str, default: str) -> str:
    file_var = os.environ.get(name + "__FILE")
    if file_var:
        return Path(file_var).read_text().strip()
    return os.environ.get(name, default)


def hash_password(password: str, salt: str) -> str:
    """Grafana's scheme: PBKDF2-HMAC-SHA256, 10000 iterations, 50 bytes, hex."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 10000, 50).hex()


class Database:
    """``grafana.db``: table ``user`` (id, login, email, password, salt, is_admin)."""

    def __init__(self, path: Path):
        self.path = path
        self.created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), check_same_thread=False)
        self.conn.execute("CREATE TABLE IF NOT EXISTS user (id INTEGER PRIMARY KEY, login TEXT UNIQUE, email TEXT, "
                          "password TEXT, salt TEXT, is_admin INTEGER)")
        self.conn.commit()

    def ensure_admin(self, login: str, password: str) -> None:
        """Create the admin when the database is new (only then, like Grafana)."""
        if self.conn.execute("SELECT count(*) FROM user").fetchone()[0]:
            return
        salt = secrets.token_hex(5)
        self.conn.execute("INSERT INTO user (id, login, email, password, salt, is_admin) VALUES (1, ?, ?, ?, ?, 1)",
                          (login, "admin@localhost", hash_password(password, salt), salt))
        self.conn.commit()

    def set_password(self, user_id: int, password: str) -> bool:
        salt = secrets.token_hex(5)
        cur = self.conn.execute("UPDATE user SET password=?, salt=? WHERE id=?", (hash_password(password, salt), salt, user_id))
        self.conn.commit()
        return cur.rowcount == 1

    def check(self, login: str, password: str) -> dict | None:
        row = self.conn.execute("SELECT id, login, email, password, salt, is_admin FROM user WHERE login=? OR email=?",
                                (login, login)).fetchone()
        if row and secrets.compare_digest(row[3], hash_password(password, row[4])):
            return {"id": row[0], "login": row[1], "email": row[2], "isGrafanaAdmin": bool(row[5])}
        return None


def _load_yaml_files(directory: Path) -> list[tuple[Path, dict]]:
    out = []
    if not directory.is_dir():
        return out
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml"):
            continue
        try:
            data = yaml.safe_load(expand_env(path.read_text()))
        except yaml.YAMLError as exc:
            raise ProvisioningError(f"{path}: could not parse provisioning file: {exc}") from None
        if not isinstance(data, dict):
            raise ProvisioningError(f"{path}: provisioning file must be a mapping")
        out.append((path, data))
    return out


def provision(root: Path) -> tuple[list[dict], list[dict]]:
    """Read and check datasources and dashboards under ``root``; raises :class:`ProvisioningError`."""
    datasources: list[dict] = []
    for path, data in _load_yaml_files(root / "datasources"):
        if data.get("apiVersion") != 1:
            raise ProvisioningError(f"{path}: apiVersion must be 1")
        for i, ds in enumerate(data.get("datasources") or []):
            where = f"{path}: datasources[{i}]"
            for key in ("name", "type"):
                if not ds.get(key):
                    raise ProvisioningError(f"{where}: datasource {key} is required")
            if ds.get("access", "proxy") not in ("proxy", "direct"):
                raise ProvisioningError(f"{where}: access must be proxy or direct")
            if ds.get("url") and not re.match(r"^https?://", str(ds["url"])):
                raise ProvisioningError(f"{where}: url must be http(s): {ds['url']!r}")
            if any(d["name"] == ds["name"] for d in datasources):
                raise ProvisioningError(f"{where}: datasource name {ds['name']!r} is not unique")
            if ds.get("uid") and any(d.get("uid") == ds["uid"] for d in datasources):
                raise ProvisioningError(f"{where}: datasource uid {ds['uid']!r} is not unique")
            datasources.append({"id": len(datasources) + 1, "uid": ds.get("uid") or f"ds{len(datasources) + 1}",
                                "name": ds["name"], "type": ds["type"], "url": ds.get("url", ""),
                                "access": ds.get("access", "proxy"), "isDefault": bool(ds.get("isDefault")),
                                "jsonData": ds.get("jsonData") or {}, "readOnly": True})
    if sum(d["isDefault"] for d in datasources) > 1:
        raise ProvisioningError("datasource.yaml config is invalid. Only one datasource per organization can be marked as default")
    dashboards: list[dict] = []
    for path, data in _load_yaml_files(root / "dashboards"):
        if data.get("apiVersion") != 1:
            raise ProvisioningError(f"{path}: apiVersion must be 1")
        for i, provider in enumerate(data.get("providers") or []):
            where = f"{path}: providers[{i}]"
            if not provider.get("name"):
                raise ProvisioningError(f"{where}: provider name is required")
            if provider.get("type", "file") != "file":
                raise ProvisioningError(f"{where}: unsupported provider type {provider.get('type')!r}")
            folder = Path(str((provider.get("options") or {}).get("path") or ""))
            if not folder.is_dir():
                raise ProvisioningError(f"{where}: options.path {str(folder)!r} does not exist")
            for file in sorted(folder.rglob("*.json")):
                try:
                    dash = json.loads(file.read_text())
                except ValueError as exc:
                    raise ProvisioningError(f"{file}: failed to load dashboard: {exc}") from None
                if not isinstance(dash, dict) or not dash.get("title"):
                    raise ProvisioningError(f"{file}: dashboard title cannot be empty")
                uid = dash.get("uid") or hashlib.sha1(str(file).encode()).hexdigest()[:9]
                if any(d["uid"] == uid for d in dashboards):
                    raise ProvisioningError(f"{file}: the same UID is used more than once: {uid}")
                dashboards.append({"uid": uid, "title": dash["title"], "dashboard": {**dash, "uid": uid},
                                   "folder": provider.get("folder", ""), "tags": dash.get("tags", [])})
    return datasources, dashboards


class GrafanaApp:
    def __init__(self, db: Database, datasources: list[dict], dashboards: list[dict]):
        self.db = db
        self.datasources = datasources
        self.dashboards = dashboards
        self.anonymous = _env_bool("GF_AUTH_ANONYMOUS_ENABLED", False)
        self.sign_up = _env_bool("GF_USERS_ALLOW_SIGN_UP", False)
        self.login_form = not _env_bool("GF_AUTH_DISABLE_LOGIN_FORM", False)
        self.sessions: dict[str, dict] = {}
        self.requests = 0

    def _user(self, headers) -> dict | None:
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                login, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            return self.db.check(login, password)
        for part in headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "grafana_session" and value in self.sessions:
                return self.sessions[value]
        if self.anonymous:
            return {"id": 0, "login": "anonymous", "email": "", "isGrafanaAdmin": False}
        return None

    def handle(self, method, path, query, headers, body):
        self.requests += 1
        sub = os.environ.get("GF_SERVER_SERVE_FROM_SUB_PATH", "").lower() == "true"
        root_path = re.sub(r"^https?://[^/]+", "", os.environ.get("GF_SERVER_ROOT_URL", "")).rstrip("/")
        if sub and root_path and path.startswith(root_path):
            path = path[len(root_path):] or "/"
        if path == "/api/health":
            return 200, {}, {"commit": "standin", "database": "ok", "version": VERSION}
        if path == "/metrics":
            m = Metrics()
            m.add("grafana_build_info", 1, {"version": VERSION})
            m.add("grafana_http_request_total_standin", self.requests, kind="counter")
            return 200, {"Content-Type": "text/plain; version=0.0.4"}, m.text()
        if path == "/login" and method == "POST":
            if not self.login_form:
                return 401, {}, {"message": "Login is disabled"}
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return 400, {}, {"message": "bad request data"}
            user = self.db.check(str(data.get("user", "")), str(data.get("password", "")))
            if not user:
                return 401, {}, {"message": "Invalid username or password"}
            token = secrets.token_hex(16)
            self.sessions[token] = user
            return 200, {"Set-Cookie": f"grafana_session={token}; Path=/; HttpOnly"}, {"message": "Logged in"}
        if path == "/login":
            return 200, {"Content-Type": "text/html"}, "<html><body>Grafana stand-in login</body></html>"
        if path == "/api/user/signup" and method == "POST":
            if not self.sign_up:
                return 401, {}, {"message": "User signup is disabled"}
            return 501, {}, {"message": "sign-up is not implemented by the stand-in"}
        if not path.startswith("/api/"):
            return (302, {"Location": "/login"}, "") if not self._user(headers) else (200, {}, "Grafana stand-in\n")
        user = self._user(headers)
        if user is None:
            return 401, {}, {"message": "Unauthorized"}
        if path == "/api/user" and method == "GET":
            return 200, {}, user
        if path == "/api/user/password" and method == "PUT":
            data = json.loads(body or b"{}")
            if not self.db.check(user["login"], str(data.get("oldPassword", ""))):
                return 401, {}, {"message": "Invalid old password"}
            if len(str(data.get("newPassword", ""))) < 4:
                return 400, {}, {"message": "New password is too short"}
            self.db.set_password(user["id"], str(data["newPassword"]))
            return 200, {}, {"message": "User password changed"}
        if path == "/api/org":
            return 200, {}, {"id": 1, "name": "Main Org."}
        if path == "/api/frontend/settings":
            return 200, {}, {"anonymousEnabled": self.anonymous, "allowSignUp": self.sign_up,
                             "buildInfo": {"version": VERSION}}
        if path == "/api/datasources":
            return 200, {}, self.datasources
        m = re.fullmatch(r"/api/datasources/(name|uid)/(.+)", path)
        if m:
            key = "name" if m.group(1) == "name" else "uid"
            for ds in self.datasources:
                if ds[key] == m.group(2):
                    return 200, {}, ds
            return 404, {}, {"message": "Data source not found"}
        if path == "/api/search":
            text = (query.get("query") or [""])[-1].lower()
            hits = [{"uid": d["uid"], "title": d["title"], "type": "dash-db", "tags": d["tags"],
                     "folderTitle": d["folder"], "url": f"/d/{d['uid']}"}
                    for d in self.dashboards if text in d["title"].lower()]
            return 200, {}, hits
        m = re.fullmatch(r"/api/dashboards/uid/(.+)", path)
        if m:
            for d in self.dashboards:
                if d["uid"] == m.group(1):
                    return 200, {}, {"dashboard": d["dashboard"], "meta": {"provisioned": True, "folderTitle": d["folder"]}}
            return 404, {}, {"message": "Dashboard not found"}
        return 404, {}, {"message": "Not found"}


def _paths() -> tuple[Path, Path]:
    return Path(os.environ.get("GF_PATHS_DATA", "/var/lib/grafana")), Path(os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))


def server() -> int:
    data, prov = _paths()
    try:
        db = Database(data / "grafana.db")
    except sqlite3.Error as exc:
        log("error", "Failed to open database", logger="sqlstore", error=str(exc))
        return 1
    user = _env("GF_SECURITY_ADMIN_USER", "admin")
    if db.created:
        db.ensure_admin(user, _env("GF_SECURITY_ADMIN_PASSWORD", "admin"))
        log("info", "Created default admin", logger="sqlstore", user=user)
    try:
        datasources, dashboards = provision(prov)
    except ProvisioningError as exc:
        log("error", "Failed to provision", logger="provisioning", error=str(exc))
        return 1
    log("info", "provisioned", logger="provisioning", datasources=len(datasources), dashboards=len(dashboards))
    port = int(os.environ.get("GF_SERVER_HTTP_PORT", "3000"))
    serve(GrafanaApp(db, datasources, dashboards), os.environ.get("GF_SERVER_HTTP_ADDR", "0.0.0.0") or "0.0.0.0", port)
    log("info", "HTTP Server Listen", logger="http.server", address=f"[::]:{port}", protocol="http")
    wait_forever()
    return 0


def cli(args: list[str]) -> int:
    args = [a for a in args if not a.startswith(("--homepath", "--config", "--configOverrides"))]
    if args[:2] != ["admin", "reset-admin-password"]:
        print(f"Error: the stand-in implements only `grafana cli admin reset-admin-password`, not {args!r}", file=sys.stderr)
        return 1
    rest = args[2:]
    if "--password-from-stdin" in rest:
        password = sys.stdin.readline().rstrip("\n")
    elif rest:
        password = rest[0]
    else:
        print("Error: ✗ New password is too short", file=sys.stderr)
        return 1
    if len(password) < 4:
        print("Error: ✗ New password is too short", file=sys.stderr)
        return 1
    data, _ = _paths()
    if not (data / "grafana.db").exists():
        print(f"Error: ✗ could not find the database {data / 'grafana.db'}", file=sys.stderr)
        return 1
    db = Database(data / "grafana.db")
    if not db.set_password(1, password):
        print("Error: ✗ could not find admin user", file=sys.stderr)
        return 1
    print("\nAdmin password changed successfully ✔\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``grafana server | cli ... | --version`` (the image's /run.sh, grafana-server and grafana-cli wrap it)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-v", "--version", "-version"):
        print(f"grafana version {VERSION}")
        return 0
    if args and args[0] == "cli":
        return cli(args[1:])
    if args and args[0] == "server":
        return server()
    print("usage: grafana server | grafana cli admin reset-admin-password [--password-from-stdin] <pw>", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
