"""Drift statistics: ours vs Evidently's DataDriftPreset on the same 1 M x 20 data.

    .venv/bin/python benchmarks/drift/run.py [--rows 1000000] [--repeat 3]

Builds a seeded reference (sample_data.generate) and a current sample with a known shift
(sample_data.shift: monthly_charges, support_calls_90d, logins_30d, plan), both as
Parquet; then runs each tool in its own process — Evidently in its own virtualenv
(`benchmarks/.venv-evidently`, created here with pip: Evidently 0.7.23 does not import
next to pandas 3) — so wall time and peak RSS (from `wait4`) are measured per tool,
including interpreter start, imports and reading the Parquet files. Writes
`benchmarks/drift/results.json` and `results.md` and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EVIDENTLY_VENV = ROOT / "benchmarks" / ".venv-evidently"
EVIDENTLY_PYTHON = EVIDENTLY_VENV / "bin" / "python"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas<3", "pyarrow"]
EVIDENTLY_METHODS = {
    "wasserstein_normed": "Wasserstein distance (normed)",
    "jensen_shannon": "Jensen-Shannon distance",
}
TOLERANCE = 1e-6


def ensure_evidently() -> str:
    check = [str(EVIDENTLY_PYTHON), "-c", "import evidently; print(evidently.__version__)"]
    if EVIDENTLY_PYTHON.exists():
        probe = subprocess.run(check, capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == "0.7.23":
            return probe.stdout.strip()
    print(f"creating {EVIDENTLY_VENV.relative_to(ROOT)} with {' '.join(EVIDENTLY_REQUIREMENTS)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(EVIDENTLY_VENV)], check=True)
    subprocess.run(
        [str(EVIDENTLY_PYTHON), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS],
        check=True,
    )
    return subprocess.run(check, capture_output=True, text=True, check=True).stdout.strip()


_BUILD = """
import sys
from training_jobs import sample_data
rows = int(sys.argv[1])
sample_data.generate(rows, seed=0).to_parquet(sys.argv[2], index=False)
shifted = sample_data.shift(sample_data.generate(rows, seed=1, id_offset=rows), seed=2)
shifted.to_parquet(sys.argv[3], index=False)
"""


def build_data(rows: int, directory: Path) -> tuple[Path, Path]:
    """In a child process: Linux carries a parent's peak RSS into children it spawns, so
    the measuring process must never hold the data itself."""
    reference = directory / "reference.parquet"
    current = directory / "current.parquet"
    subprocess.run(
        [sys.executable, "-c", _BUILD, str(rows), str(reference), str(current)],
        check=True,
        cwd=ROOT,
    )
    return reference, current


def measure(command: list[str]) -> dict[str, float]:
    """Wall seconds and peak RSS of one child process (wait4 reports that child alone)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[1]} failed with exit status {process.returncode}")
    # ru_maxrss is in KiB on Linux.
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024}


def compare_values(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, mine in ours.items():
        other = theirs[name]
        same = EVIDENTLY_METHODS[mine["method"]] == other["method"]
        rows.append(
            {
                "feature": name,
                "ours_method": mine["method"],
                "ours": mine["value"],
                "evidently_method": other["method"],
                "evidently": other["value"],
                "same_method": same,
                "abs_diff": abs(mine["value"] - other["value"]) if same else None,
                "ours_psi": mine["psi"],
            }
        )
    return rows


def markdown(result: dict[str, Any]) -> str:
    o, e = result["ours"], result["evidently"]
    lines = [
        f"# Drift benchmark: {result['rows']:,} rows × 20 features per side",
        "",
        f"Machine: {result['machine']}. Evidently {result['evidently_version']}. "
        "Wall time and peak RSS per process, including start-up, imports and Parquet reads.",
        "",
        "| tool | wall s | compute s | peak RSS MiB |",
        "|---|---:|---:|---:|",
        f"| ours (median of {len(o['runs'])}) | {o['wall_s']:.2f} | {o['compute_s']:.2f} "
        f"| {o['peak_rss_mib']:.0f} |",
        f"| Evidently DataDriftPreset | {e['wall_s']:.2f} | {e['compute_s']:.2f} "
        f"| {e['peak_rss_mib']:.0f} |",
        "",
        f"Speed-up (wall): **{result['speedup_wall']:.1f}×**; "
        f"(compute): {result['speedup_compute']:.1f}×. "
        f"Memory: ours is **{result['memory_fraction']:.3f}** of Evidently's peak.",
        "",
        "Max |ours − Evidently| where the method is the same: "
        + ", ".join(f"{m} {d:.2e}" for m, d in result["max_abs_diff_by_method"].items()),
        "",
        "Evidently scores numeric features with at most 5 distinct values (discount_pct here)"
        " with Jensen-Shannon distance; ours keeps normalised Wasserstein for every numeric"
        " feature, so those rows are not compared.",
        "",
        "| feature | our method | ours | Evidently method | Evidently | abs diff |",
        "|---|---|---:|---|---:|---:|",
    ]
    for row in result["features"]:
        diff = f"{row['abs_diff']:.1e}" if row["same_method"] else "method differs"
        lines.append(
            f"| {row['feature']} | {row['ours_method']} | {row['ours']:.6f} "
            f"| {row['evidently_method']} | {row['evidently']:.6f} | {diff} |"
        )
    return "\n".join(lines) + "\n"


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "compute_s": statistics.median(r["compute_s"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "runs": [{k: r[k] for k in ("wall_s", "compute_s", "peak_rss_mib")} for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours (median kept)")
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--skip-evidently", action="store_true", help="ours only (quick check)")
    args = parser.parse_args()

    evidently_version = "skipped" if args.skip_evidently else ensure_evidently()
    from training_jobs import schema

    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        work = Path(tmp)
        print(f"building {args.rows:,} rows per side ...", flush=True)
        reference, current = build_data(args.rows, work)

        def run_ours(index: int) -> dict[str, Any]:
            out = work / f"ours-{index}.json"
            command = [sys.executable, str(HERE / "ours.py"), str(reference), str(current)]
            usage = measure([*command, str(args.chunk_rows), str(out)])
            print(f"ours run {index + 1}: {usage['wall_s']:.2f} s, {usage['peak_rss_mib']:.0f} MiB")
            return {**usage, **json.loads(out.read_text())}

        # Half of our runs before Evidently and half after, so a change in the machine's
        # load during the long Evidently run does not favour either tool.
        before = args.repeat if args.skip_evidently else (args.repeat + 1) // 2
        runs = [run_ours(i) for i in range(before)]
        if args.skip_evidently:
            print(json.dumps(summarise(runs), indent=2))
            return

        print("Evidently DataDriftPreset ... (minutes)", flush=True)
        out = work / "evidently.json"
        usage = measure(
            [
                str(EVIDENTLY_PYTHON),
                str(HERE / "evidently_side.py"),
                str(reference),
                str(current),
                ",".join(schema.NUMERIC_FEATURES),
                ",".join(schema.CATEGORICAL_FEATURES),
                str(out),
            ]
        )
        print(f"Evidently: {usage['wall_s']:.2f} s, {usage['peak_rss_mib']:.0f} MiB")
        theirs_raw = json.loads(out.read_text())
        evidently = {**usage, "compute_s": theirs_raw["compute_s"], "load_s": theirs_raw["load_s"]}
        runs += [run_ours(i) for i in range(before, args.repeat)]

    ours_values = runs[0]["values"]
    if any(r["values"] != ours_values for r in runs):
        raise SystemExit("our runs disagree with each other: the computation is not deterministic")
    ours = summarise(runs)
    features = compare_values(ours_values, theirs_raw["values"])
    by_method: dict[str, float] = {}
    for row in features:
        if row["same_method"]:
            method = row["ours_method"]
            by_method[method] = max(by_method.get(method, 0.0), row["abs_diff"])
    result = {
        "rows": args.rows,
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}"
        ),
        "evidently_version": evidently_version,
        "ours": ours,
        "evidently": evidently,
        "speedup_wall": evidently["wall_s"] / ours["wall_s"],
        "speedup_compute": evidently["compute_s"] / ours["compute_s"],
        "memory_fraction": ours["peak_rss_mib"] / evidently["peak_rss_mib"],
        "max_abs_diff_by_method": by_method,
        "all_equal_within_tolerance": all(
            row["abs_diff"] <= TOLERANCE for row in features if row["same_method"]
        ),
        "tolerance": TOLERANCE,
        "features": features,
    }
    (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "results.md").write_text(markdown(result))
    print(markdown(result))
    print(
        f"speed-up {result['speedup_wall']:.1f}x wall (target >= 20x), memory "
        f"{result['memory_fraction']:.3f} of Evidently's (target <= 0.25), values equal within "
        f"{TOLERANCE:g}: {result['all_equal_within_tolerance']}"
    )


if __name__ == "__main__":
    main()
