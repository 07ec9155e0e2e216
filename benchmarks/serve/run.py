"""The model server on both paths vs `mlflow models serve` and Seldon MLServer: same model,
same load generator, one run.

    .venv/bin/python benchmarks/serve/run.py [--duration 10] [--warmup 2] [--servers ...]

Trains the shipped churn pipeline (training_jobs.train.build_pipeline: ColumnTransformer,
imputer, scaler, one-hot encoder, logistic regression on 20 columns), registers it as
`churn@champion` behind a real MLflow tracking server, compiles it as `register` does
(training_jobs.compile: ONNX, verified against the original), and serves it with

    ours-compiled  python -m training_jobs.serve  (the version's verified ONNX form)
    ours-pyfunc    the same, MLOPS_SERVE_PREFER_COMPILED=false (MLflow pyfunc)
    mlflow         mlflow models serve -w 1 --env-manager local
    mlserver       mlserver start with mlserver-sklearn, one process (parallel_workers 0),
                   in its own virtualenv (benchmarks/serve/.mlserver-venv, made on first run)

each alone on loopback, driven by a raw asyncio HTTP/1.1 keep-alive client at concurrency
1 and 8 with 1-row and 100-row bodies (the same rows; MLflow's `dataframe_split` for the
first three, the V2 inference protocol with the pandas codec for MLServer). Also measured:
cold start (process start → first 200 on a prediction) and PSS of the server's process
tree after the load. Writes results.json and results.md next to this file and prints the
ratios against the issue's targets. The generator's own CPU is reported: near 100% of a
core, the numbers would measure the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops_local.processes import UVICORN_PORT, ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MLSERVER_VENV = HERE / ".mlserver-venv"
MODEL = "churn"
SERVERS = ("ours-compiled", "ours-pyfunc", "mlflow", "mlserver")
SCENARIOS = [(1, 1), (8, 1), (1, 100), (8, 100)]  # (concurrency, rows per request)
TARGETS = [
    # (what, ratio name, minimum)
    ("c=8 single-row req/s ≥ 10× mlflow", "req/s c=8 rows=1 vs mlflow", 10.0),
    ("c=8 single-row req/s ≥ 5× mlserver", "req/s c=8 rows=1 vs mlserver", 5.0),
    ("c=1 single-row req/s ≥ 5× mlflow", "req/s c=1 rows=1 vs mlflow", 5.0),
    ("p99 at c=8 ≤ 1/10 of mlflow's", "p99 c=8 rows=1 mlflow ÷ ours", 10.0),
    ("cold start ≤ 1/3 of mlflow's", "cold start mlflow ÷ ours", 3.0),
    ("memory ≤ 1/2 of mlflow's", "PSS mlflow ÷ ours", 2.0),
]


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


@dataclass
class Footprint:
    server: str
    cold_start_s: float
    pss_mib: float


# --- the model ---------------------------------------------------------------------------


def feature_rows(n: int, seed: int) -> Any:
    """Feature rows with no nulls (MLServer's V2 JSON has no null for FP64)."""
    from training_jobs import sample_data, schema

    frame = sample_data.generate(n, seed=seed)[list(schema.FEATURE_NAMES)]
    return frame.fillna({"satisfaction_score": 5.0})


def train_register_compile(tracking_uri: str, root: Path) -> Any:
    """The shipped pipeline, registered and compiled as the platform's jobs do."""
    import mlflow
    import mlflow.sklearn

    from training_jobs import sample_data, schema
    from training_jobs.compile import compile_sklearn, publish, record
    from training_jobs.train import Settings, build_pipeline, model_signature

    frame = sample_data.generate(5_000, seed=0)
    x, y = frame[list(schema.FEATURE_NAMES)], frame[schema.LABEL_COLUMN]
    pipe = build_pipeline(Settings()).fit(x, y)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("bench", artifact_location=str(root / "artifacts"))
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            pipe,
            name="model",
            signature=model_signature(),
            input_example=x.head(3),
            pip_requirements=["scikit-learn", "pandas", "numpy", "skops"],
            skops_trusted_types=["numpy.dtype"],
        )
    version = str(mlflow.register_model(info.model_uri, MODEL).version)
    client = mlflow.MlflowClient(tracking_uri)
    client.set_registered_model_alias(MODEL, "champion", version)
    inputs = model_signature().inputs.to_dict()
    compiled = compile_sklearn(
        pipe,
        inputs,
        sample_data.generate(2_000, seed=3)[x.columns],
        model_name=MODEL,
        version=version,
    )

    def write(key: str, body: bytes) -> str:
        path = root / "bundles" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return path.as_uri()

    record(
        client,
        MODEL,
        version,
        manifest_uri=publish(compiled, write, f"compiled/{MODEL}/v{version}/"),
    )
    print(f"  compiled and verified: {compiled.manifest['verification']}", flush=True)
    return pipe


# --- request bodies ----------------------------------------------------------------------


def mlflow_bodies(rows: int, count: int = 16) -> list[bytes]:
    frame = feature_rows(rows * count, seed=7)
    data, names = frame.values.tolist(), list(frame.columns)
    return [
        json.dumps(
            {"dataframe_split": {"columns": names, "data": data[i * rows : (i + 1) * rows]}}
        ).encode()
        for i in range(count)
    ]


def v2_bodies(rows: int, count: int = 16) -> list[bytes]:
    from training_jobs import schema

    frame = feature_rows(rows * count, seed=7)
    bodies = []
    for i in range(count):
        part = frame.iloc[i * rows : (i + 1) * rows]
        inputs = [
            {
                "name": c.name,
                "datatype": "FP64" if c.kind == "numeric" else "BYTES",
                "shape": [rows, 1],
                "data": part[c.name].tolist(),
            }
            for c in schema.FEATURES
        ]
        bodies.append(json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs}).encode())
    return bodies


def http_request(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def requests_for(server: str, port: int, rows: int) -> list[bytes]:
    if server == "mlserver":
        return [http_request(port, f"/v2/models/{MODEL}/infer", b) for b in v2_bodies(rows)]
    return [http_request(port, "/invocations", b) for b in mlflow_bodies(rows)]


# --- the load generator ------------------------------------------------------------------


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


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pids


def process_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants (the MLflow CLI forks its server)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def pss_mib(pid: int) -> float:
    """Proportional set size of the process tree: shared pages counted once in total."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return round(total / 1024, 1)


async def drive(
    server: str,
    pid: int,
    port: int,
    concurrency: int,
    rows: int,
    warmup_s: float,
    duration_s: float,
) -> Result:
    requests = requests_for(server, port, rows)
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
        server=server, concurrency=concurrency, rows=rows, duration_s=round(wall, 2),
        requests=n, errors=errors, rps=round(n / wall, 1), rows_per_s=round(n * rows / wall, 1),
        p50_ms=pct(0.50), p99_ms=pct(0.99), client_cpu_pct=round(100 * cpu / wall, 1),
        server_cpu_pct=round(100 * server_cpu / wall, 1),
    )  # fmt: skip


# --- servers -----------------------------------------------------------------------------


def _post_ok(port: int, request: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            return sock.recv(16)[9:12] == b"200"
    except OSError:
        return False


def wait_first_prediction(proc: ManagedProcess, port: int, request: bytes) -> None:
    """Until the first 200 to a prediction (polled every 50 ms: the cold start's end)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not proc.running():
            raise SystemExit(f"{proc.name} exited; its log ends with:\n{proc.log_tail(40)}")
        if _post_ok(port, request):
            return
        time.sleep(0.05)
    raise SystemExit(f"{proc.name}: no prediction within 300 s:\n{proc.log_tail(40)}")


def ensure_mlserver_venv() -> Path:
    """MLServer in its own virtualenv: its pins (fastapi, grpc) are not the platform's."""
    python = MLSERVER_VENV / "bin" / "python"
    if not python.exists():
        import sklearn

        uv = Path(sys.executable).with_name("uv")
        subprocess.run([str(uv), "venv", "-q", "-p", "3.11", str(MLSERVER_VENV)], check=True)
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(python), "mlserver",
             "mlserver-sklearn", f"scikit-learn=={sklearn.__version__}", "pandas"],
            check=True,
        )  # fmt: skip
    return python


def mlserver_model_dir(pipe: Any, root: Path, port: int) -> Path:
    import joblib

    directory = root / "mlserver"
    (directory / MODEL).mkdir(parents=True, exist_ok=True)
    joblib.dump(pipe, directory / MODEL / "model.joblib")
    (directory / MODEL / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    (directory / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )
    return directory


def command(server: str, port: int, model_dir: Path | None) -> list[str]:
    if server.startswith("ours"):
        return [sys.executable, "-m", "training_jobs.serve", "--port", str(port)]
    if server == "mlflow":
        return [
            str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m",
            f"models:/{MODEL}@champion", "--env-manager", "local", "-h", "127.0.0.1",
            "-p", str(port), "-w", "1",
        ]  # fmt: skip
    assert model_dir is not None
    return [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(model_dir)]


def start(
    server: str, env: dict[str, str], port: int, log: Path, model_dir: Path | None
) -> tuple[ManagedProcess, float]:
    """The server, and its cold start: spawn to the first 200 to a prediction."""
    server_env = env | ({"MLOPS_SERVE_PREFER_COMPILED": "false"} if server == "ours-pyfunc" else {})
    first = requests_for(server, port, 1)[0]
    proc = ManagedProcess(
        server, command(server, port, model_dir), env=server_env, log_path=log,
        cwd=model_dir or REPO,
    )  # fmt: skip
    started = time.perf_counter()
    proc.start()
    try:
        wait_first_prediction(proc, port, first)
    except BaseException:
        proc.stop()
        raise
    return proc, time.perf_counter() - started


def tracking_server(root: Path, env: dict[str, str]) -> tuple[ManagedProcess, str]:
    """The MLflow tracking server the models are registered in (port 0, as it reports it)."""
    proc = ManagedProcess(
        "mlflow server",
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
         f"sqlite:///{root / 'mlflow.db'}", "--host", "127.0.0.1", "--port", "0",
         "--workers", "1"],
        env=env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, log_path=root / "tracking.log",
    ).start()  # fmt: skip
    try:
        uri = f"http://127.0.0.1:{proc.reported_port(UVICORN_PORT, timeout_s=120)}"
        proc.wait_healthy(f"{uri}/health", timeout_s=120)
    except BaseException:
        proc.stop()
        raise
    return proc, uri


# --- report ------------------------------------------------------------------------------


def ratios_of(results: list[Result], footprints: list[Footprint], ours: str) -> dict[str, float]:
    by = {(r.server, r.concurrency, r.rows): r for r in results}
    out: dict[str, float] = {}
    for peer in ("mlflow", "mlserver"):
        for concurrency, rows in SCENARIOS:
            a, b = by.get((ours, concurrency, rows)), by.get((peer, concurrency, rows))
            if a and b and b.rps and a.p99_ms:
                out[f"req/s c={concurrency} rows={rows} vs {peer}"] = round(a.rps / b.rps, 2)
                out[f"p99 c={concurrency} rows={rows} {peer} ÷ ours"] = round(
                    b.p99_ms / a.p99_ms, 2
                )
    feet = {f.server: f for f in footprints}
    for peer in ("mlflow", "mlserver"):
        if ours in feet and peer in feet:
            out[f"cold start {peer} ÷ ours"] = round(
                feet[peer].cold_start_s / feet[ours].cold_start_s, 2
            )
            out[f"PSS {peer} ÷ ours"] = round(feet[peer].pss_mib / feet[ours].pss_mib, 2)
    return out


def markdown(
    results: list[Result],
    footprints: list[Footprint],
    ratios: dict[str, float],
    verdicts: list[tuple[str, float | None, bool]],
) -> str:
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
    lines += [
        "",
        "| server | cold start s (to first prediction) | PSS MiB after load |",
        "|---|---:|---:|",
    ]
    lines += [f"| {f.server} | {f.cold_start_s:.2f} | {f.pss_mib} |" for f in footprints]
    lines += ["", "| ours-compiled ÷ peer | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in ratios.items()]
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    lines += [f"| {what} | {value} | {'yes' if met else 'NO'} |" for what, value, met in verdicts]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per scenario"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each")
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args()
    servers = args.servers.split(",")
    if "mlserver" in servers:
        ensure_mlserver_venv()

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        root = Path(tmp)
        base_env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONPATH": str(REPO),
            # `mlflow models serve` execs `uvicorn` from PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        print("training, registering and compiling the model ...", flush=True)
        tracking, uri = tracking_server(root, base_env)
        try:
            pipe = train_register_compile(uri, root)
            env = base_env | {
                "MLFLOW_TRACKING_URI": uri,
                "MLOPS_SERVE_MODEL_NAME": MODEL,
                "MLOPS_SERVE_TRACKING_URI": uri,
                "MLOPS_SERVE_CAPTURE_ENABLED": "false",
                "MLOPS_SERVE_LOG_LEVEL": "WARNING",
            }
            results: list[Result] = []
            footprints: list[Footprint] = []
            for server in servers:
                port = free_port()
                model_dir = mlserver_model_dir(pipe, root, port) if server == "mlserver" else None
                log = root / f"{server}.log"
                print(f"starting {server} on port {port} ...", flush=True)
                proc, cold = start(server, env, port, log, model_dir)
                pid = proc.pid
                assert pid is not None  # started
                try:
                    for concurrency, rows in SCENARIOS:
                        r = asyncio.run(
                            drive(
                                server,
                                pid,
                                port,
                                concurrency,
                                rows,
                                args.warmup,
                                args.duration,
                            )
                        )
                        results.append(r)
                        print(
                            f"  {server:13} c={concurrency} rows={rows:3}: {r.rps:8.1f} req/s  "
                            f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  errors {r.errors}  "
                            f"client CPU {r.client_cpu_pct}%  server CPU {r.server_cpu_pct}%",
                            flush=True,
                        )
                    footprints.append(Footprint(server, round(cold, 3), pss_mib(pid)))
                    print(
                        f"  {server:13} cold start {cold:.2f} s, PSS {footprints[-1].pss_mib} MiB"
                    )
                finally:
                    proc.stop(grace_s=60)
        finally:
            tracking.stop(grace_s=60)

    ratios = ratios_of(results, footprints, "ours-compiled")
    verdicts = [
        (what, ratios.get(key), ratios.get(key, 0.0) >= minimum) for what, key, minimum in TARGETS
    ]
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "results": [asdict(r) for r in results],
        "footprints": [asdict(f) for f in footprints],
        "ratios": ratios,
        "targets": [{"target": w, "measured": v, "met": m} for w, v, m in verdicts],
    }  # fmt: skip
    (HERE / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (HERE / "results.md").write_text(markdown(results, footprints, ratios, verdicts))
    print()
    for k, v in ratios.items():
        print(f"{k:40} {v}×")
    for what, value, met in verdicts:
        print(f"target {what}: {value}× — {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
