"""Settings of the model server, from flags or `MLOPS_SERVE_*` environment variables.

The jobs' settings base (training_jobs/common.py): the platform-wide settings (model name,
tracking URI, region, stack outputs, the captures bucket) are also read from the
`MLOPS_*` names every workload shares, below `MLOPS_SERVE_*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Final, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from training_jobs import contract
from training_jobs.common import NAME_PATTERN, PLATFORM_VARIABLES, BaseJobSettings

# The server names its captures bucket `capture_bucket` (MLOPS_SERVE_CAPTURE_BUCKET, as the
# Deployment sets it); the platform-wide name is the data lake's.
_CAPTURE_FIELD: Final = "capture_bucket"


class ServeSettings(BaseJobSettings):
    """Everything the server needs; units are in the names."""

    model_config = SettingsConfigDict(env_prefix=contract.SERVE_ENV_PREFIX)

    platform_variables: ClassVar[Mapping[str, str]] = MappingProxyType(
        {**PLATFORM_VARIABLES, _CAPTURE_FIELD: contract.bucket_variable(contract.BUCKET_CAPTURES)}
    )
    bucket_fields: ClassVar[Mapping[str, str]] = MappingProxyType(
        {contract.BUCKET_CAPTURES: _CAPTURE_FIELD}
    )

    # Also a key segment of the captures (`captures/<model>/...`): the jobs' name rule.
    model_name: str = Field(pattern=NAME_PATTERN, description="Registered model to serve.")
    model_alias: str = Field(
        default=contract.CHAMPION_ALIAS, min_length=1, description="Registry alias followed."
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

    capture_bucket: str | None = Field(
        default=None, description="Captures bucket; unset: the stack outputs', else capture is off."
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _buffer_holds_a_batch(self) -> Self:
        if self.capture_buffer_records < self.capture_batch_records:
            raise ValueError(
                f"{self.flag('capture_buffer_records')} ({self.capture_buffer_records}) must "
                f"be at least {self.flag('capture_batch_records')} "
                f"({self.capture_batch_records})"
            )
        return self
