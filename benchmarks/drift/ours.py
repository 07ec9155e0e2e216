"""Our drift computation on the benchmark's Parquet files, exactly as the job runs it.

Usage: ours.py REFERENCE.parquet CURRENT.parquet CHUNK_ROWS OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from training_jobs import schema
from training_jobs.drift.analysis import Thresholds, compare
from training_jobs.drift.columns import ParquetColumns


def main() -> None:
    reference_path, current_path, chunk_rows, out = sys.argv[1:5]
    started = time.perf_counter()
    findings = compare(
        ParquetColumns("reference", [Path(reference_path)], int(chunk_rows)),
        ParquetColumns("current", [Path(current_path)], int(chunk_rows)),
        schema.FEATURES,
        Thresholds(),
    )
    computed = time.perf_counter()
    values = {
        f.name: {"value": f.score, "method": f.method, "psi": f.psi, "drifted": f.drifted}
        for f in findings
    }
    Path(out).write_text(json.dumps({"compute_s": computed - started, "values": values}, indent=2))


if __name__ == "__main__":
    main()
