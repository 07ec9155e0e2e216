"""S3 helpers the jobs share: content hashes, write-if-changed, verified reads, clear errors.

Every object a job writes carries its sha256 in metadata, so a re-run compares hashes with
what is stored before putting and leaves unchanged objects (and their version ids) alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)
from pydantic import BaseModel, ConfigDict

from training_jobs.common import EnvironmentProblem, JobError

# boto3 ships no type information; the client is duck-typed throughout.
S3Client = Any

SHA256_METADATA = "sha256"


class StoredObject(BaseModel):
    """One object version as a manifest pins it."""

    model_config = ConfigDict(frozen=True)

    key: str
    version_id: str | None
    size: int
    sha256: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_s3_client(region: str | None) -> S3Client:
    """boto3 honours AWS_ENDPOINT_URL, so the emulator needs no code branch here."""
    return boto3.client("s3", region_name=region)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def s3_call(what: str, call: Any, /, **kwargs: Any) -> Any:
    """Run one S3 call; credential and endpoint failures become one actionable message."""
    try:
        return call(**kwargs)
    except NoCredentialsError as exc:
        raise EnvironmentProblem(
            f"{what}: no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, or run with a job role)"
        ) from exc
    except EndpointConnectionError as exc:
        raise EnvironmentProblem(f"{what}: cannot reach S3 ({exc})") from exc
    except BotoCoreError as exc:
        raise EnvironmentProblem(f"{what}: {exc}") from exc


def require_bucket(s3: S3Client, name: str, origin: str, *, versioned: bool = False) -> None:
    """Fail with the setting that named the bucket when it is missing or unversioned."""
    try:
        s3_call(f"bucket {name!r}", s3.head_bucket, Bucket=name)
    except ClientError as exc:
        if _error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            raise JobError(
                f"{origin}: bucket {name!r} does not exist; check the name or deploy the "
                "stack (`pulumi up`, or the local platform)"
            ) from exc
        if _error_code(exc) in {"403", "AccessDenied"}:
            raise JobError(f"{origin}: access to bucket {name!r} is denied") from exc
        raise
    if versioned:
        status = s3_call(f"bucket {name!r}", s3.get_bucket_versioning, Bucket=name).get("Status")
        if status != "Enabled":
            raise JobError(
                f"{origin}: bucket {name!r} has versioning {status or 'off'}; dataset "
                "manifests pin object versions, so the bucket must have versioning Enabled"
            )


def head(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        response: dict[str, Any] = s3_call(
            f"s3://{bucket}/{key}", s3.head_object, Bucket=bucket, Key=key
        )
    except ClientError as exc:
        if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    return response


def stored_sha256(s3: S3Client, bucket: str, key: str, response: dict[str, Any]) -> str:
    """The sha256 recorded at write time, or computed from the bytes for foreign objects."""
    recorded = response.get("Metadata", {}).get(SHA256_METADATA)
    if recorded:
        return str(recorded)
    return sha256_hex(get_bytes(s3, bucket, key))


def put_if_changed(
    s3: S3Client, bucket: str, key: str, body: bytes, content_type: str
) -> tuple[StoredObject, bool]:
    """Put `body` unless the current version already holds the same bytes.

    Returns the stored object (version id of what is now current) and whether it was written.
    """
    digest = sha256_hex(body)
    current = head(s3, bucket, key)
    if current is not None and stored_sha256(s3, bucket, key, current) == digest:
        return (
            StoredObject(
                key=key,
                version_id=current.get("VersionId"),
                size=int(current["ContentLength"]),
                sha256=digest,
            ),
            False,
        )
    response = s3_call(
        f"s3://{bucket}/{key}",
        s3.put_object,
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=content_type,
        Metadata={SHA256_METADATA: digest},
    )
    stored = StoredObject(
        key=key, version_id=response.get("VersionId"), size=len(body), sha256=digest
    )
    return stored, True


def get_bytes(s3: S3Client, bucket: str, key: str, version_id: str | None = None) -> bytes:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    response = s3_call(f"s3://{bucket}/{key}", s3.get_object, **kwargs)
    return bytes(response["Body"].read())


def get_verified(s3: S3Client, bucket: str, obj: StoredObject, what: str) -> bytes:
    """The pinned version's bytes, refusing anything whose hash or size differs."""
    location = f"s3://{bucket}/{obj.key}" + (
        f"?versionId={obj.version_id}" if obj.version_id else ""
    )
    try:
        body = get_bytes(s3, bucket, obj.key, obj.version_id)
    except ClientError as exc:
        if _error_code(exc) in {"404", "NoSuchKey", "NoSuchVersion", "InvalidArgument"}:
            raise JobError(f"{what}: {location} is gone ({_error_code(exc)})") from exc
        raise
    digest = sha256_hex(body)
    if digest != obj.sha256 or len(body) != obj.size:
        raise JobError(
            f"{what}: {location} does not match its manifest (sha256 {digest[:12]}…, "
            f"{len(body)} bytes; expected {obj.sha256[:12]}…, {obj.size} bytes)"
        )
    return body


def list_keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
    except (NoCredentialsError, EndpointConnectionError) as exc:
        raise EnvironmentProblem(f"s3://{bucket}/{prefix}: {exc}") from exc
    return sorted(keys)


def read_pointer(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """A small JSON document at a fixed key (latest.json pointers), or None if absent."""
    if head(s3, bucket, key) is None:
        return None
    value: dict[str, Any] = json.loads(get_bytes(s3, bucket, key))
    return value
