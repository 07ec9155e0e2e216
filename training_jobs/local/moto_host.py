"""`moto_server`, plus an optional state file so the emulated S3 survives a restart.

    python -m training_jobs.local.moto_host --host 127.0.0.1 --port 5001 [--state FILE]

Runs moto's own server (`moto.server.main`, what the `moto_server` script runs). With
`--state`, the S3 backend (buckets, every object version with its version id) is loaded
from FILE at start and written back on SIGTERM/SIGINT, so dataset manifests and MLflow
artifacts stay valid across `demo --work-dir` runs. Only S3 is persisted: it is all the
jobs use. The file is a pickle written by this module into the user's own work dir.
"""

from __future__ import annotations

import argparse
import copyreg
import pickle
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any


def _rebuild_versioned(cls: type[dict[str, Any]], lists: dict[str, list[Any]]) -> dict[str, Any]:
    store = cls()
    for key, versions in lists.items():
        dict.__setitem__(store, key, versions)
    return store


def _reduce_versioned(store: dict[str, Any]) -> tuple[Any, ...]:
    # moto's key store is a dict of version lists whose item access shows only the newest
    # version; pickled the default way, every older version would be lost.
    lists = {key: list(dict.__getitem__(store, key)) for key in dict.keys(store)}
    return _rebuild_versioned, (type(store), lists)


def load_state(path: Path) -> int:
    """Restore S3 backends; returns the number of buckets restored."""
    from moto.s3.models import s3_backends

    # Written by `save_state` below into the caller's own work dir; never foreign input.
    state = pickle.loads(path.read_bytes())  # noqa: S301
    for account, regions in state["backends"].items():
        s3_backends[account] = regions
    # moto resolves bucket names through this global map; without it a CreateBucket would
    # silently replace a restored bucket with an empty one.
    s3_backends.bucket_accounts.update(state["bucket_accounts"])
    return len(state["bucket_accounts"])


def save_state(path: Path) -> None:
    from moto.s3.models import s3_backends

    tmp = path.with_suffix(path.suffix + ".tmp")
    from moto.s3.utils import _VersionedKeyStore

    state = {"backends": dict(s3_backends), "bucket_accounts": dict(s3_backends.bucket_accounts)}
    with tmp.open("wb") as sink:
        pickler = pickle.Pickler(sink)
        pickler.dispatch_table = copyreg.dispatch_table | {_VersionedKeyStore: _reduce_versioned}
        pickler.dump(state)
    tmp.replace(path)  # atomic: a crash mid-write leaves the previous state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training_jobs.local.moto_host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.state is not None and args.state.exists():
        restored = load_state(args.state)
        sys.stderr.write(f"moto_host: restored {restored} bucket(s) from {args.state}\n")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from moto import server

    try:
        server.main(["--host", args.host, "--port", str(args.port)])
    finally:
        if args.state is not None:
            save_state(args.state)
            sys.stderr.write(f"moto_host: saved state to {args.state}\n")
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
