"""Attachment storage: S3 (boto3) when ``S3_BUCKET`` is set, else a local directory.

Both backends store bytes under a key ``orders/<order id>/<attachment id>`` and
stream them back in chunks. S3 uploads request server-side encryption
(``S3_SSE``: ``AES256`` or ``aws:kms``); ``S3_ENDPOINT_URL`` points boto3 at an
S3-compatible service (MinIO, moto in tests).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from order_service.core.config import Settings

CHUNK_BYTES = 64 * 1024


class StorageError(RuntimeError):
    """The storage backend failed (answer 503); the message names the operation, not secrets."""


class Storage(Protocol):
    """Where attachment bytes live."""

    name: str

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` (overwrites)."""

    def open(self, key: str) -> Iterator[bytes]:
        """Iterate over the stored bytes in chunks of up to 64 KiB."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is missing)."""


class LocalStorage:
    """Files below ``root`` (a volume), written atomically (temporary file + rename), mode 0600."""

    name = "local"

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StorageError("invalid storage key")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write ``data`` to ``root/key``; raises :class:`StorageError` on an OS error."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"local storage write failed: {type(exc).__name__}") from exc

    def open(self, key: str) -> Iterator[bytes]:
        """Chunks of ``root/key``; raises :class:`StorageError` when it cannot be opened."""
        try:
            handle = self._path(key).open("rb")
        except OSError as exc:
            raise StorageError(f"local storage read failed: {type(exc).__name__}") from exc

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK_BYTES):
                    yield chunk

        return chunks()

    def delete(self, key: str) -> None:
        """Remove ``root/key`` if present."""
        self._path(key).unlink(missing_ok=True)


class S3Storage:
    """Objects in ``bucket`` through a boto3 client (``endpoint_url`` optional)."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        import boto3  # noqa: PLC0415 - only needed with a bucket
        from botocore.config import Config  # noqa: PLC0415

        self.bucket = settings.S3_BUCKET
        self.sse = settings.S3_SSE
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.S3_ENDPOINT_URL,
            region_name=settings.S3_REGION,
            aws_access_key_id=settings.S3_ACCESS_KEY_ID,
            aws_secret_access_key=(
                settings.S3_SECRET_ACCESS_KEY.get_secret_value() if settings.S3_SECRET_ACCESS_KEY else None
            ),
            config=Config(
                connect_timeout=settings.DEPENDENCY_TIMEOUT_SECONDS,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """``PutObject`` with ``ServerSideEncryption``; raises :class:`StorageError` on failure."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, ServerSideEncryption=self.sse
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 upload failed: {type(exc).__name__}") from exc

    def open(self, key: str) -> Iterator[bytes]:
        """``GetObject`` body, streamed in chunks; raises :class:`StorageError` on failure."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 download failed: {type(exc).__name__}") from exc

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK_BYTES)
            finally:
                body.close()

        return chunks()

    def delete(self, key: str) -> None:
        """``DeleteObject`` (S3 does not fail for a missing key)."""
        self.client.delete_object(Bucket=self.bucket, Key=key)


def make_storage(settings: Settings) -> Storage:
    """:class:`S3Storage` when ``S3_BUCKET`` is set, else :class:`LocalStorage` on ``STORAGE_DIR``."""
    if settings.S3_BUCKET:
        return S3Storage(settings)
    return LocalStorage(settings.STORAGE_DIR)
