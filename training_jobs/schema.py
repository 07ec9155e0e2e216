"""The declared schema of the churn dataset the platform ships with.

One home for column names, types, ranges and categories: `prepare` validates raw rows
against it, `train` builds its feature pipeline from it, the drift job takes its feature
list and kinds from it, and the sample-data generator produces rows that satisfy it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

ColumnKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False


ID_COLUMN: Final = "customer_id"
LABEL_COLUMN: Final = "churned"

FEATURES: Final[tuple[Column, ...]] = (
    Column("tenure_months", "numeric", 0, 120),
    Column("monthly_charges", "numeric", 0, 500),
    Column("total_charges", "numeric", 0, 60_000),
    Column("age", "numeric", 18, 100),
    Column("support_calls_90d", "numeric", 0, 100),
    Column("logins_30d", "numeric", 0, 1_000),
    Column("avg_session_minutes", "numeric", 0, 600),
    Column("data_usage_gb", "numeric", 0, 5_000),
    Column("devices", "numeric", 0, 50),
    Column("days_since_last_login", "numeric", 0, 3_650),
    Column("late_payments_12m", "numeric", 0, 12),
    Column("discount_pct", "numeric", 0, 100),
    Column("satisfaction_score", "numeric", 1, 10, nullable=True),
    Column("referrals", "numeric", 0, 1_000),
    Column("contract_months_remaining", "numeric", 0, 36),
    Column("spend_change_pct", "numeric", -100, 1_000),
    Column("plan", "categorical", categories=("basic", "standard", "premium")),
    Column("region", "categorical", categories=("north", "south", "east", "west")),
    Column("payment_method", "categorical", categories=("card", "bank", "paypal", "invoice")),
    Column("contract_type", "categorical", categories=("monthly", "annual", "two_year")),
)

NUMERIC_FEATURES: Final = tuple(c.name for c in FEATURES if c.kind == "numeric")
CATEGORICAL_FEATURES: Final = tuple(c.name for c in FEATURES if c.kind == "categorical")
FEATURE_NAMES: Final = tuple(c.name for c in FEATURES)
