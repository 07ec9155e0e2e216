"""A fresh platform has no champion yet: the server is ready (a first `pulumi up`
completes), says why it cannot predict, and starts serving once the pipeline registers one."""

from __future__ import annotations

from tests.serve.serve_helpers import (
    Registry,
    eventually,
    rows_payload,
    serve_in_thread,
    settings,
    train_and_register,
)


def test_ready_on_an_empty_registry_then_serves_the_first_champion(registry: Registry) -> None:
    name = "churn-not-trained-yet"
    config = settings(registry, model_name=name, poll_interval_s=0.2)
    with serve_in_thread(config, wait_ready=False) as running, running.client() as c:
        eventually(lambda: c.get("/health/ready").status_code == 200, "ready with no model")
        ready = c.get("/health/ready")
        assert ready.json() == {"status": "no-model", "model": name, "alias": "champion"}
        assert c.get("/health/live").status_code == 200

        answer = c.post("/invocations", json=rows_payload(registry.rows.head(2)))
        assert answer.status_code == 503
        assert f"no version of {name} is champion yet" in answer.json()["message"]
        assert answer.headers["retry-after"]

        # The registered model exists but the alias does not yet: still "no model".
        train_and_register(registry.tracking_uri, name, alias="candidate")
        assert c.get("/health/ready").json()["status"] == "no-model"

        train_and_register(registry.tracking_uri, name, seed=3)
        eventually(lambda: c.get("/health/ready").json()["status"] == "ready", "champion loaded")
        served = c.post("/invocations", json=rows_payload(registry.rows.head(2)))
        assert served.status_code == 200 and len(served.json()["predictions"]) == 2


def test_an_unreachable_registry_is_not_ready(registry: Registry) -> None:
    # Unlike an empty registry, an unknown one cannot say what should be served.
    config = settings(registry, tracking_uri="http://127.0.0.1:9", poll_interval_s=0.2)
    with serve_in_thread(config, wait_ready=False) as running, running.client() as c:
        eventually(lambda: running.app.metrics is not None, "started")
        assert c.get("/health/ready").status_code == 503
        assert c.get("/health/ready").json() == {"status": "loading"}
