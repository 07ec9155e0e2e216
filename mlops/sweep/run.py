"""A sweep from start to receipt: discover, select, delete in order, look again, report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlops.expiry import format_utc
from mlops.sweep.delete import DELETERS, Context, SweepError
from mlops.sweep.discover import ClientFactory, discover
from mlops.sweep.select import BILLING_KINDS, Found, Selector, in_deletion_order, verdict

RECEIPT_SCHEMA = 1


@dataclass
class Receipt:
    """What a sweep saw and did. `remaining` is what is still there and selected afterwards."""

    selector: Selector
    region: str
    delete: bool
    found: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    remaining: list[dict[str, Any]] = field(default_factory=list)
    listing_errors: list[str] = field(default_factory=list)

    @property
    def still_billing(self) -> list[dict[str, Any]]:
        return [r for r in self.remaining if r["kind"] in BILLING_KINDS]

    @property
    def clean(self) -> bool:
        """Nothing selected is left (after --delete) and every listing answered."""
        return not self.remaining and not self.listing_errors

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": RECEIPT_SCHEMA,
            "mode": "delete" if self.delete else "dry-run",
            "region": self.region,
            "selector": {
                "stack": self.selector.stack,
                "expired": self.selector.expired,
                "now": format_utc(self.selector.now),
            },
            "found": self.found,
            "deleted": self.deleted,
            "failed": self.failed,
            "remaining": self.remaining,
            "still_billing": self.still_billing,
            "listing_errors": self.listing_errors,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")


def _entry(resource: Found, **extra: Any) -> dict[str, Any]:
    return {"kind": resource.kind, "name": resource.name, "arn": resource.arn, **extra}


def sweep(
    clients: ClientFactory,
    selector: Selector,
    *,
    region: str,
    delete: bool,
    context: Context | None = None,
    report: Callable[[str], None] = lambda line: None,
) -> Receipt:
    receipt = Receipt(selector=selector, region=region, delete=delete)
    candidates, errors = discover(clients, selector)
    receipt.listing_errors += errors
    selected: list[Found] = []
    for resource in candidates:
        decision = verdict(resource, selector)
        receipt.found.append(
            resource.to_json() | {"selected": decision.selected, "reason": decision.reason}
        )
        if decision.selected:
            selected.append(resource)
        else:
            report(f"keep    {resource.kind:<26} {resource.name}  ({decision.reason})")
    ordered = in_deletion_order(selected)

    if not delete:
        for resource in ordered:
            report(f"would delete {resource.kind:<21} {resource.name}")
        receipt.remaining = [_entry(r) for r in ordered]
        return receipt

    ctx = context or Context(clients)
    ctx.clients = clients
    ctx.selected = frozenset({r.arn for r in ordered} | {r.name for r in ordered})
    for resource in ordered:
        deleter = DELETERS.get(resource.kind)
        if deleter is None:
            error = f"no deleter for {resource.kind}: delete it by hand (ARN above)"
            receipt.failed.append(_entry(resource, error=error))
            report(f"FAILED  {resource.kind:<26} {resource.name}: {error}")
            continue
        try:
            detail = deleter(resource, ctx)
        except (ClientError, BotoCoreError, SweepError) as exc:
            receipt.failed.append(_entry(resource, error=str(exc)))
            report(f"FAILED  {resource.kind:<26} {resource.name}: {exc}")
            continue
        receipt.deleted.append(_entry(resource, detail=detail))
        report(f"deleted {resource.kind:<26} {resource.name}: {detail}")

    # Look again rather than trust the calls: asynchronous deletes and eventual consistency.
    after, errors = discover(clients, selector)
    receipt.listing_errors += [f"after deletion: {e}" for e in errors]
    receipt.remaining = [_entry(r) for r in after if verdict(r, selector).selected]
    return receipt
