"""Settings of the model server, from flags or `MLOPS_SERVE_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from training_jobs import contract


class ServeSettings(BaseSettings):
    """Everything the server needs; units are in the names."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_SERVE_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        extra="ignore",
        frozen=True,
    )

    model_name: str = Field(min_length=1, description="Registered model to serve.")
    model_alias: str = Field(
        default=contract.CHAMPION_ALIAS, min_length=1, description="Registry alias followed."
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; else the stack outputs', else MLFLOW_TRACKING_URI.",
    )
    registry_uri: str | None = Field(default=None, description="MLflow registry URI if separate.")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)

    max_body_bytes: int = Field(default=1_048_576, gt=0, description="Larger bodies get 413.")
    max_concurrency: int = Field(
        default=256,
        gt=0,
        description="Prediction requests in flight (reading, queued or predicting); more get 503.",
    )
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After sent with 503.")
    batch_max_rows: int = Field(default=512, gt=0, description="Rows merged into one predict.")
    batch_max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description=(
            "How long a batch waits for more requests. 0 batches what queued while the model "
            "was busy, which adds no latency when idle."
        ),
    )
    poll_interval_s: float = Field(default=30.0, gt=0, description="Alias polling period.")
    prefer_compiled: bool = Field(
        default=True,
        description="Serve a version's verified compiled form (ONNX) when it has one; "
        "false serves every version through MLflow's pyfunc.",
    )

    stack_outputs: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("stack_outputs", "MLOPS_STACK_OUTPUTS"),
        description=(
            "`pulumi stack output --json` file (env MLOPS_STACK_OUTPUTS); supplies the "
            "captures bucket, region and tracking URI unless given explicitly."
        ),
    )
    capture_bucket: str | None = Field(
        default=None, description="Captures bucket; wins over the stack outputs. Unset: off."
    )
    capture_prefix: str = contract.PREFIX_CAPTURES
    capture_batch_records: int = Field(default=1_000, gt=0, description="Records per object.")
    capture_flush_interval_s: float = Field(default=60.0, gt=0)
    capture_buffer_records: int = Field(
        default=100_000, gt=0, description="Records held for upload; beyond, records are dropped."
    )
    capture_enabled: bool = True

    drain_grace_s: float = Field(
        default=25.0, ge=0, description="On SIGTERM, how long in-flight requests may take."
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _buffer_holds_a_batch(self) -> Self:
        if self.capture_buffer_records < self.capture_batch_records:
            raise ValueError(
                f"capture_buffer_records ({self.capture_buffer_records}) must be at least "
                f"capture_batch_records ({self.capture_batch_records})"
            )
        return self
