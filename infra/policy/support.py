"""The support calendar of everything the program pins: a dated table, checked on a date.

AWS stops creating (and then upgrades by force) Kubernetes versions and database minors on
published dates; a pin past its date fails the first `pulumi up` on a fresh account, or
costs extended-support fees. The rule MLOPS-SUP-001 reads this table; `today()` is the day
the plan is checked (`mlops policy --date` sets another, so the rule is testable).

Sources, as of 2026-12-02: the EKS user guide's "Kubernetes version lifecycle" calendar;
the RDS for PostgreSQL release calendar (majors: end of standard support each February,
five years after release; minors: AWS's retirement notices); kube-prometheus-stack release
dates from prometheus-community/helm-charts. Update the table when you raise a pin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime


@dataclass(frozen=True)
class Window:
    released: date
    end_of_standard_support: date

    def supported_on(self, day: date) -> bool:
        return self.released <= day < self.end_of_standard_support


# EKS: end of standard support (extended support costs 6x the control plane after it).
EKS_VERSIONS: dict[str, Window] = {
    "1.31": Window(date(2024, 9, 26), date(2025, 11, 26)),
    "1.32": Window(date(2025, 1, 23), date(2026, 3, 23)),
    "1.33": Window(date(2025, 5, 29), date(2026, 7, 29)),
    "1.34": Window(date(2025, 10, 2), date(2026, 12, 2)),
    "1.35": Window(date(2026, 1, 27), date(2027, 3, 27)),
    "1.36": Window(date(2026, 6, 2), date(2027, 8, 2)),
}

# RDS for PostgreSQL majors: end of standard support.
POSTGRES_MAJORS: dict[str, Window] = {
    "13": Window(date(2021, 2, 24), date(2026, 2, 28)),
    "14": Window(date(2022, 2, 3), date(2027, 2, 28)),
    "15": Window(date(2023, 2, 27), date(2028, 2, 29)),
    "16": Window(date(2023, 11, 16), date(2029, 2, 28)),
    "17": Window(date(2024, 11, 18), date(2030, 2, 28)),
}
# RDS for PostgreSQL minors AWS has retired: new instances on them fail from this date.
POSTGRES_RETIRED_MINORS: dict[str, date] = {
    **{f"16.{minor}": date(2026, 5, 1) for minor in range(1, 9)},
    **{f"15.{minor}": date(2026, 5, 1) for minor in range(2, 10)},
}

# Helm charts: supported here for a year after their release (upstream supports only the
# newest); the key is (chart, version).
CHART_SUPPORT_DAYS = 365
CHARTS: dict[tuple[str, str], date] = {
    ("kube-prometheus-stack", "77.6.2"): date(2025, 9, 1),
    ("kube-prometheus-stack", "88.5.3"): date(2026, 8, 22),
}

_today: date | None = None


def today() -> date:
    """The day pins are checked against (UTC), unless `set_today` chose another."""
    return _today or datetime.now(UTC).date()


def set_today(day: date | None) -> None:
    global _today
    _today = day


def eks_problem(version: str, day: date) -> str | None:
    window = EKS_VERSIONS.get(version)
    if window is None:
        return f"EKS {version} is not in the support calendar (infra/policy/support.py)"
    if not window.supported_on(day):
        return (
            f"EKS {version} left standard support on {window.end_of_standard_support} "
            f"(checked on {day}); pin one of "
            + ", ".join(v for v, w in EKS_VERSIONS.items() if w.supported_on(day))
        )
    return None


def postgres_problem(engine_version: str, day: date) -> str | None:
    major = engine_version.split(".")[0]
    window = POSTGRES_MAJORS.get(major)
    if window is None:
        return f"PostgreSQL {engine_version} is not in the support calendar"
    if not window.supported_on(day):
        return f"PostgreSQL {major} left RDS standard support on {window.end_of_standard_support}"
    retired = POSTGRES_RETIRED_MINORS.get(engine_version)
    if retired is not None and day >= retired:
        return (
            f"PostgreSQL {engine_version} was retired by RDS on {retired}: no new instance "
            f"can use it; pin the major ('{major}') and let RDS pick the minor"
        )
    return None


def chart_problem(chart: str, version: str, day: date) -> str | None:
    released = CHARTS.get((chart, version))
    if released is None:
        return f"chart {chart} {version} is not in the support calendar"
    age = (day - released).days
    if age >= CHART_SUPPORT_DAYS:
        return f"chart {chart} {version} was released {age} days ago (supported for a year)"
    return None


def supported_eks_versions(day: date) -> list[str]:
    return [v for v, w in EKS_VERSIONS.items() if w.supported_on(day)]
