"""Expiry instants of ephemeral stacks and resources: ISO 8601, always UTC, always explicit.

`mlops env` writes `mlops:ephemeral.expires_at` and the program tags `mlops:expires-at`;
`mlops env reap` and `mlops sweep --expired` read them back. One parser for both sides, so a
value one writes the other can always read, and a malformed value is an error, never "not
expired".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from training_jobs import contract

MAX_TTL_HOURS = 24 * 14  # the bound infra/config.py's EphemeralConfig.ttl_hours enforces


class ExpiryError(ValueError):
    """A timestamp or TTL that cannot be used; the message names the value and the format."""


def parse_utc(text: str, *, what: str = "timestamp") -> datetime:
    """An aware UTC datetime from ISO 8601 text that carries an offset (`Z` or `+hh:mm`).

    A naive timestamp is refused: guessing its zone could reap a stack hours early.
    """
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ExpiryError(
            f"{what} {text!r} is not ISO 8601; expected e.g. 2026-11-29T10:00:00Z"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ExpiryError(
            f"{what} {text!r} has no timezone; add 'Z' for UTC (e.g. 2026-11-29T10:00:00Z)"
        )
    return parsed.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    try:
        return contract.format_expiry(moment)
    except ValueError as exc:
        raise ExpiryError(str(exc)) from None


def expires_at(now: datetime, ttl_hours: int) -> datetime:
    """`now + ttl_hours`, truncated to the second, in UTC."""
    if isinstance(ttl_hours, bool) or not 1 <= ttl_hours <= MAX_TTL_HOURS:
        raise ExpiryError(f"--ttl-hours {ttl_hours!r}: expected 1 to {MAX_TTL_HOURS} hours")
    if now.tzinfo is None:
        raise ExpiryError(f"now {now!r} has no timezone")
    return (now.astimezone(UTC) + timedelta(hours=ttl_hours)).replace(microsecond=0)


def is_expired(expiry: datetime, now: datetime) -> bool:
    """Expired at the instant itself: a stack due at 10:00 is reaped by a run at 10:00."""
    return expiry <= now


def utc_now() -> datetime:
    return datetime.now(UTC)
