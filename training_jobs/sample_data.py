"""Seeded, churn-like tabular data, so nothing is downloaded.

`generate(n_rows, seed)` returns rows satisfying `training_jobs.schema`; `shift` moves some
features the way production traffic drifts, for the drift → retrain demo and tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training_jobs import schema


def generate(n_rows: int, seed: int = 0, *, id_offset: int = 0) -> pd.DataFrame:
    """Rows with 16 numeric and 4 categorical features, an id and a 0/1 churn label."""
    rng = np.random.default_rng(seed)
    n = n_rows
    tenure = rng.integers(0, 73, n).astype(float)
    monthly = np.round(rng.gamma(4.0, 18.0, n).clip(5, 480), 2)
    cols: dict[str, np.ndarray] = {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": np.round((tenure * monthly * rng.uniform(0.9, 1.1, n)).clip(0, 59_000), 2),
        "age": rng.integers(18, 90, n).astype(float),
        "support_calls_90d": rng.poisson(1.5, n).astype(float),
        "logins_30d": rng.poisson(20, n).astype(float),
        "avg_session_minutes": np.round(rng.lognormal(2.5, 0.6, n).clip(0, 590), 2),
        "data_usage_gb": np.round(rng.gamma(2.0, 15.0, n).clip(0, 4_900), 2),
        "devices": rng.integers(1, 8, n).astype(float),
        "days_since_last_login": rng.exponential(6.0, n).round().clip(0, 3_600),
        "late_payments_12m": rng.binomial(12, 0.05, n).astype(float),
        "discount_pct": rng.choice([0.0, 5.0, 10.0, 15.0, 20.0], n, p=[0.5, 0.2, 0.15, 0.1, 0.05]),
        "satisfaction_score": rng.integers(1, 11, n).astype(float),
        "referrals": rng.poisson(0.4, n).astype(float),
        "contract_months_remaining": rng.integers(0, 25, n).astype(float),
        "spend_change_pct": np.round(rng.normal(0.0, 12.0, n).clip(-99, 900), 2),
        "plan": rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.35, 0.15]),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "payment_method": rng.choice(
            ["card", "bank", "paypal", "invoice"], n, p=[0.4, 0.3, 0.2, 0.1]
        ),
        "contract_type": rng.choice(["monthly", "annual", "two_year"], n, p=[0.55, 0.3, 0.15]),
    }
    # A few missing satisfaction scores, as surveys go unanswered.
    cols["satisfaction_score"][rng.random(n) < 0.03] = np.nan

    logit = (
        -1.2
        - 0.04 * cols["tenure_months"]
        + 0.012 * cols["monthly_charges"]
        + 0.35 * cols["support_calls_90d"]
        + 0.05 * cols["days_since_last_login"]
        + 0.4 * cols["late_payments_12m"]
        - 0.15 * np.nan_to_num(cols["satisfaction_score"], nan=5.0)
        + np.where(cols["contract_type"] == "monthly", 1.0, -0.6)
        + np.where(cols["payment_method"] == "invoice", 0.5, 0.0)
    )
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    frame = pd.DataFrame({schema.ID_COLUMN: np.arange(id_offset, id_offset + n, dtype=np.int64)})
    for column in schema.FEATURES:
        frame[column.name] = cols[column.name]
    frame[schema.LABEL_COLUMN] = churned
    return frame


def shift(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """The same rows as production drifts: pricier plans, more support calls, fewer logins."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(out)
    out["monthly_charges"] = (out["monthly_charges"] * 1.35 + 10).clip(5, 480).round(2)
    out["support_calls_90d"] = out["support_calls_90d"] + rng.poisson(2.0, n)
    out["logins_30d"] = (out["logins_30d"] * 0.6).round()
    out["plan"] = rng.choice(["basic", "standard", "premium"], n, p=[0.2, 0.35, 0.45])
    return out


# One way each to break the schema, cycled through by `with_corrupt_rows`.
_CORRUPTIONS: tuple[dict[str, str], ...] = (
    {"tenure_months": "twelve"},
    {"age": "-4"},
    {"plan": "platinum"},
    {"monthly_charges": ""},
    {"churned": "yes"},
    {"region": "atlantis", "devices": "1e9"},
)


def with_corrupt_rows(frame: pd.DataFrame, n_corrupt: int) -> pd.DataFrame:
    """`frame` as text (as a CSV export would hold it) plus `n_corrupt` broken rows.

    The broken rows get fresh ids, so each is rejected for its broken values alone.
    """
    text = frame.astype(str).replace("nan", "")
    next_id = int(frame[schema.ID_COLUMN].max()) + 1 if len(frame) else 0
    broken = [
        text.iloc[i % len(text)].to_dict()
        | {schema.ID_COLUMN: str(next_id + i)}
        | _CORRUPTIONS[i % len(_CORRUPTIONS)]
        for i in range(n_corrupt)
    ]
    return pd.concat([text, pd.DataFrame(broken, columns=text.columns)], ignore_index=True)
