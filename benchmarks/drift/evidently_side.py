"""Evidently's DataDriftPreset on the benchmark's Parquet files; runs in Evidently's own venv.

Usage: evidently_side.py REFERENCE.parquet CURRENT.parquet NUMERIC,COLS CATEGORICAL,COLS OUT.json
Writes the wall time of the preset alone and Evidently's per-column value and method.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def main() -> None:
    reference_path, current_path, numeric, categorical, out = sys.argv[1:6]
    started = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    loaded = time.perf_counter()
    definition = DataDefinition(
        numerical_columns=numeric.split(","), categorical_columns=categorical.split(",")
    )
    report = Report([DataDriftPreset()])
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    computed = time.perf_counter()
    # snapshot.dict()["metrics"]: one entry per metric; the preset's per-column results are
    # {"config": {"type": "evidently:metric_v2:ValueDrift", "column", "method", "threshold"},
    #  "value": <drift score>} (evidently/core/report.py Snapshot.dict).
    values = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith(":ValueDrift"):
            values[config["column"]] = {"value": float(metric["value"]), "method": config["method"]}
    Path(out).write_text(
        json.dumps(
            {
                "load_s": loaded - started,
                "compute_s": computed - loaded,
                "values": values,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
