"""Tag maps from one source, merged as {Name, **platform_tags, **component_tags}."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from training_jobs import contract


def platform_tags(
    *, stack: str, environment: str, owner: str, expires_at: datetime | None = None
) -> dict[str, str]:
    """The tags every platform resource carries; `expires_at` only for ephemeral stacks."""
    tags = {
        contract.TAG_STACK: stack,
        contract.TAG_ENVIRONMENT: environment,
        contract.TAG_OWNER: owner,
    }
    if expires_at is not None:
        tags[contract.TAG_EXPIRES_AT] = contract.format_expiry(expires_at)
    return tags


def resource_tags(
    name: str, platform: Mapping[str, str], component: Mapping[str, str] | None = None
) -> dict[str, str]:
    return {"Name": name, **platform, **(component or {})}
