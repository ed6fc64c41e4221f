"""The offsite copy on S3 (boto3): upload, verification, retention, aborted uploads.

Layout: ``s3://<bucket>/<prefix><id>/<file>`` for each file of the manifest, then
``<prefix><id>/manifest.json`` last, so a prefix without a manifest is an unfinished copy.
Every object is uploaded with ``ServerSideEncryption`` (``sse``) and its SHA-256 in the object
metadata (``x-amz-meta-sha256``; the ETag of a multipart upload is no checksum); after each
upload ``HeadObject`` must report the size, the SHA-256 and the server-side encryption, or the
copy fails. Files above ``multipart_threshold`` go up in parts of ``multipart_chunksize``.
Multipart uploads left unfinished under the prefix (a dead earlier run) are aborted at every run.

On the bucket a backup is ``valid`` when its manifest and every listed object exist with the
manifest's size and SHA-256 metadata; retention (:mod:`.retention`) judges the bucket's list
exactly as it judges the local one.

Credentials come only from the credentials file (:func:`~.config.read_credentials`): no
environment variable, profile or instance metadata is consulted. A missing file, a wrong key or
an unreachable endpoint raises :class:`~.errors.BackupError` with the S3 error code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import S3Config, read_credentials
from .errors import BackupError
from .manifest import ID_PATTERN, MANIFEST, BackupInfo, id_time, validate_manifest

__all__ = ["Offsite"]


class Offsite:
    """One bucket prefix. Raises :class:`BackupError` for every S3 failure."""

    def __init__(self, cfg: S3Config, client: Any = None):
        self.cfg = cfg
        self.prefix = cfg.prefix
        if client is None:
            creds = read_credentials(cfg.credentials_file)
            try:
                import boto3
                from botocore.config import Config as BotoConfig
            except ImportError:
                raise BackupError("boto3 is not installed (python3-boto3)") from None
            session = boto3.session.Session(region_name=cfg.region, **creds)
            client = session.client(
                "s3", endpoint_url=cfg.endpoint_url,
                config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=120),
            )
        self.s3 = client

    def _call(self, what: str, fn, *args, **kw):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kw)
        except ClientError as e:
            err = e.response.get("Error", {})
            raise BackupError(f"S3 {what} failed: {err.get('Code', '?')}: {err.get('Message', '')}"[:400]) from None
        except BotoCoreError as e:
            raise BackupError(f"S3 {what} failed: {type(e).__name__}: {e}"[:400]) from None

    def check_access(self) -> None:
        """Fail loudly now (wrong key, no bucket, unreachable) rather than after a dump."""
        self._call(f"access to bucket {self.cfg.bucket}", self.s3.head_bucket, Bucket=self.cfg.bucket)

    def abort_incomplete(self) -> list[str]:
        """Abort every unfinished multipart upload under the prefix; returns their keys."""
        aborted = []
        resp = self._call("listing multipart uploads", self.s3.list_multipart_uploads, Bucket=self.cfg.bucket, Prefix=self.prefix)
        for up in resp.get("Uploads", []):
            self._call(f"aborting upload of {up['Key']}", self.s3.abort_multipart_upload,
                       Bucket=self.cfg.bucket, Key=up["Key"], UploadId=up["UploadId"])
            aborted.append(up["Key"])
        return aborted

    def _put(self, path: Path, key: str, sha256: str) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError
        from boto3.exceptions import S3UploadFailedError

        config = TransferConfig(multipart_threshold=self.cfg.multipart_threshold,
                                multipart_chunksize=self.cfg.multipart_chunksize, use_threads=True, max_concurrency=2)
        extra = {"ServerSideEncryption": self.cfg.sse, "Metadata": {"sha256": sha256}}
        try:
            self.s3.upload_file(str(path), self.cfg.bucket, key, ExtraArgs=extra, Config=config)
        except (ClientError, BotoCoreError, S3UploadFailedError) as e:
            raise BackupError(f"S3 upload of {key} failed: {str(e)[:300]}") from None
        head = self._call(f"checking {key}", self.s3.head_object, Bucket=self.cfg.bucket, Key=key)
        size = path.stat().st_size
        if head.get("ContentLength") != size:
            raise BackupError(f"S3 object {key} has {head.get('ContentLength')} bytes, the file {size}")
        if head.get("Metadata", {}).get("sha256") != sha256:
            raise BackupError(f"S3 object {key} lacks the SHA-256 metadata of the file")
        if head.get("ServerSideEncryption") != self.cfg.sse:
            raise BackupError(f"S3 object {key}: server-side encryption {self.cfg.sse} requested, "
                              f"the endpoint reports {head.get('ServerSideEncryption')!r}")

    def upload(self, backup_path: Path, manifest: dict) -> int:
        """Copy one local backup (files first, manifest last); returns the bytes uploaded."""
        ident = manifest["id"]
        total = 0
        for entry in manifest["files"].values():
            self._put(backup_path / entry["name"], f"{self.prefix}{ident}/{entry['name']}", entry["sha256"])
            total += entry["bytes"]
        import hashlib

        mpath = backup_path / MANIFEST
        self._put(mpath, f"{self.prefix}{ident}/{MANIFEST}", hashlib.sha256(mpath.read_bytes()).hexdigest())
        return total + mpath.stat().st_size

    def _objects(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        token = None
        while True:
            kw = {"Bucket": self.cfg.bucket, "Prefix": self.prefix}
            if token:
                kw["ContinuationToken"] = token
            resp = self._call("listing objects", self.s3.list_objects_v2, **kw)
            for obj in resp.get("Contents", []):
                out[obj["Key"]] = obj
            if not resp.get("IsTruncated"):
                return out
            token = resp["NextContinuationToken"]

    def list(self) -> list[BackupInfo]:
        """Every backup prefix in the bucket with its state, oldest first."""
        objects = self._objects()
        idents = sorted({k[len(self.prefix):].split("/", 1)[0] for k in objects if "/" in k[len(self.prefix):]})
        found = []
        for ident in idents:
            if not ID_PATTERN.match(ident):
                continue
            base = f"{self.prefix}{ident}/"
            where = f"s3://{self.cfg.bucket}/{base}"
            if base + MANIFEST not in objects:
                found.append(BackupInfo(ident, id_time(ident), "no-manifest", where=where, problem="manifest.json missing"))
                continue
            body = self._call(f"reading {base}{MANIFEST}", self.s3.get_object, Bucket=self.cfg.bucket, Key=base + MANIFEST)["Body"].read()
            try:
                data = json.loads(body)
            except ValueError:
                found.append(BackupInfo(ident, id_time(ident), "bad-manifest", where=where, problem="manifest is not JSON"))
                continue
            problem = validate_manifest(data, ident)
            if problem:
                found.append(BackupInfo(ident, id_time(ident), "bad-manifest", where=where, problem=problem))
                continue
            state, problem = "valid", ""
            for entry in data["files"].values():
                obj = objects.get(base + entry["name"])
                if obj is None:
                    state, problem = "truncated", f"{entry['name']} missing"
                    break
                if obj["Size"] != entry["bytes"]:
                    state, problem = "truncated", f"{entry['name']} has {obj['Size']} bytes, manifest says {entry['bytes']}"
                    break
                head = self._call(f"checking {base}{entry['name']}", self.s3.head_object, Bucket=self.cfg.bucket, Key=base + entry["name"])
                if head.get("Metadata", {}).get("sha256") != entry["sha256"]:
                    state, problem = "corrupt", f"{entry['name']}: SHA-256 metadata differs from the manifest"
                    break
            found.append(BackupInfo(ident, id_time(ident), state, data, where, problem))
        return found

    def delete(self, backups: Iterable[BackupInfo]) -> list[str]:
        """Delete every object of the given backups; returns the deleted keys."""
        objects = self._objects()
        keys = [k for b in backups for k in objects if k.startswith(f"{self.prefix}{b.id}/")]
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            resp = self._call("deleting objects", self.s3.delete_objects, Bucket=self.cfg.bucket,
                              Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            if resp.get("Errors"):
                e = resp["Errors"][0]
                raise BackupError(f"S3 delete of {e.get('Key')} failed: {e.get('Code')}")
        return keys

    def download(self, ident: str, name: str, dest: Path) -> None:
        """Fetch one object of a backup to ``dest``."""
        self._call(f"download of {ident}/{name}", self.s3.download_file, self.cfg.bucket, f"{self.prefix}{ident}/{name}", str(dest))
