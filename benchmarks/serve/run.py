"""Model server vs `mlflow models serve` on the same registered model, same load generator.

    .venv/bin/python benchmarks/serve/run.py [--duration 10] [--warmup 2]

Trains the churn pipeline (ColumnTransformer + OneHotEncoder + LogisticRegression), registers
it as `churn@champion` in a throwaway sqlite registry, then starts each server in turn on
loopback with one worker and drives it with a raw asyncio HTTP/1.1 keep-alive client at
concurrency 1 and 8, with 1-row and 100-row `dataframe_split` requests. Writes
`results.json` and `results.md` next to this file and prints the ratios. The generator's own
CPU is reported: if it nears 100% of a core, the numbers measure the client, not the server.
Inference capture is off on our server, as `mlflow models serve` has none.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODEL = "churn"
SCENARIOS = [(1, 1), (8, 1), (1, 100), (8, 100)]  # (concurrency, rows per request)


@dataclass
class Result:
    server: str
    concurrency: int
    rows: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    client_cpu_pct: float
    server_cpu_pct: float


def train_and_register(tracking_uri: str, artifacts: Path) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from training_jobs import sample_data, schema

    frame = sample_data.generate(5_000, seed=0)
    x, y = frame[list(schema.FEATURE_NAMES)], frame[schema.LABEL_COLUMN]
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    pre = ColumnTransformer(
        [
            ("num", numeric, list(schema.NUMERIC_FEATURES)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(schema.CATEGORICAL_FEATURES)),
        ]
    )
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1_000))]).fit(x, y)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("bench", artifact_location=str(artifacts))
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            pipe,
            name="model",
            signature=infer_signature(x, pipe.predict(x)),
            input_example=x.head(3),
            pip_requirements=["scikit-learn", "pandas", "numpy"],
            skops_trusted_types=["numpy.dtype"],
        )
    version = mlflow.register_model(info.model_uri, MODEL).version
    mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", str(version))


def request_bodies(rows: int, count: int = 16) -> list[bytes]:
    import math

    from training_jobs import sample_data, schema

    frame = sample_data.generate(rows * count, seed=7)[list(schema.FEATURE_NAMES)]
    data = [
        [None if isinstance(v, float) and math.isnan(v) else v for v in r]
        for r in frame.values.tolist()
    ]
    names = list(frame.columns)
    bodies = []
    for i in range(count):
        doc = {"dataframe_split": {"columns": names, "data": data[i * rows : (i + 1) * rows]}}
        bodies.append(json.dumps(doc).encode())
    return bodies


def http_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def _connection(
    port: int, requests: list[bytes], stop_at: float, record_from: float, latencies: list[float]
) -> int:
    """One keep-alive connection sending back to back; returns its error count."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors, i = 0, 0
    loop = asyncio.get_running_loop()
    try:
        while True:
            start = loop.time()
            if start >= stop_at:
                return errors
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if start >= record_from:
                latencies.append(loop.time() - start)
                errors += status != 200
            if head.lower().find(b"connection: close") >= 0:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def process_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants (the MLflow CLI forks its server)."""
    total, stack = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


async def drive(
    server: str,
    pid: int,
    port: int,
    concurrency: int,
    rows: int,
    warmup_s: float,
    duration_s: float,
) -> Result:
    requests = [http_request(port, b) for b in request_bodies(rows)]
    loop = asyncio.get_running_loop()
    record_from = loop.time() + warmup_s
    stop_at = record_from + duration_s
    latencies: list[float] = []
    tasks = [
        asyncio.create_task(_connection(port, requests, stop_at, record_from, latencies))
        for _ in range(concurrency)
    ]
    await asyncio.sleep(max(0.0, record_from - loop.time()))
    cpu0, wall0, server0 = time.process_time(), time.perf_counter(), process_cpu_s(pid)
    errors = sum(await asyncio.gather(*tasks))
    wall = time.perf_counter() - wall0
    cpu, server_cpu = time.process_time() - cpu0, process_cpu_s(pid) - server0
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float:
        return round(latencies[min(n - 1, int(q * n))] * 1000, 2) if n else float("nan")

    return Result(
        server=server,
        concurrency=concurrency,
        rows=rows,
        duration_s=round(wall, 2),
        requests=n,
        errors=errors,
        rps=round(n / wall, 1),
        rows_per_s=round(n * rows / wall, 1),
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        client_cpu_pct=round(100 * cpu / wall, 1),
        server_cpu_pct=round(100 * server_cpu / wall, 1),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback URL we built
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not ready after {timeout_s}s:\n{log.read_text()[-3000:]}")


def start(server: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    if server == "ours":
        cmd = [sys.executable, "-m", "training_jobs.serve", "--port", str(port)]
        ready = f"http://127.0.0.1:{port}/health/ready"
    else:
        mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
        cmd = [
            mlflow_cli,
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ]
        ready = f"http://127.0.0.1:{port}/ping"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_ready(proc, ready, log)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def markdown(results: list[Result], ratios: dict[str, float]) -> str:
    lines = [
        "| server | concurrency | rows/request | req/s | rows/s | p50 ms | p99 ms | errors "
        "| client CPU % | server CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.concurrency} | {r.rows} | {r.rps} | {r.rows_per_s} | {r.p50_ms} "
            f"| {r.p99_ms} | {r.errors} | {r.client_cpu_pct} | {r.server_cpu_pct} |"
        )
    lines += ["", "| ours ÷ mlflow | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in ratios.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per scenario"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each")
    parser.add_argument("--servers", default="ours,mlflow")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        root = Path(tmp)
        tracking = f"sqlite:///{root / 'mlflow.db'}"
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLOPS_SERVE_MODEL_NAME": MODEL,
            "MLOPS_SERVE_TRACKING_URI": tracking,
            "MLOPS_SERVE_CAPTURE_ENABLED": "false",
            "MLOPS_SERVE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
            # `mlflow models serve` execs `uvicorn` from PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        print("training and registering the model ...", flush=True)
        train_and_register(tracking, root / "artifacts")
        results: list[Result] = []
        for server in args.servers.split(","):
            port = free_port()
            log = root / f"{server}.log"
            print(f"starting {server} on port {port} ...", flush=True)
            proc = start(server, env, port, log)
            try:
                for concurrency, rows in SCENARIOS:
                    r = asyncio.run(
                        drive(server, proc.pid, port, concurrency, rows, args.warmup, args.duration)
                    )
                    results.append(r)
                    print(
                        f"  {server:6} c={concurrency} rows={rows:3}: {r.rps:8.1f} req/s "
                        f"{r.rows_per_s:9.1f} rows/s  p50 {r.p50_ms:7.2f} ms  "
                        f"p99 {r.p99_ms:7.2f} ms  errors {r.errors}  "
                        f"client CPU {r.client_cpu_pct}%  server CPU {r.server_cpu_pct}%",
                        flush=True,
                    )
            finally:
                stop(proc)

    by_key = {(r.server, r.concurrency, r.rows): r for r in results}
    ratios: dict[str, float] = {}
    for concurrency, rows in SCENARIOS:
        ours, theirs = (
            by_key.get(("ours", concurrency, rows)),
            by_key.get(("mlflow", concurrency, rows)),
        )
        if ours and theirs and theirs.rps and ours.p99_ms:
            ratios[f"req/s c={concurrency} rows={rows}"] = round(ours.rps / theirs.rps, 2)
            ratios[f"p99 c={concurrency} rows={rows} (mlflow ÷ ours)"] = round(
                theirs.p99_ms / ours.p99_ms, 2
            )
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "results": [asdict(r) for r in results],
        "ratios": ratios,
    }
    (HERE / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (HERE / "results.md").write_text(markdown(results, ratios))
    print()
    for k, v in ratios.items():
        print(f"{k:40} {v}×")
    target = ratios.get("req/s c=8 rows=1")
    if target is not None:
        verdict = "met" if target >= 3 else "NOT met"
        print(f"target ≥3× MLflow single-row req/s at concurrency 8: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
