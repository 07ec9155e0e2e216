"""Parity: what differs between stacks, in config and in the resources it produces."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mlops.cli import main
from mlops.review import parity
from tests.review.conftest import plan_for


def test_normalise_removes_stack_names_and_generated_ids() -> None:
    assert parity.normalise("mlops-prod-raw-f6836b5", "prod") == "mlops-<stack>-raw-<id>"
    assert (
        parity.normalise("arn:aws:s3:::mlops-dev-raw-1a2b3c4/*", "dev")
        == "arn:aws:s3:::mlops-<stack>-raw-<id>/*"
    )
    assert parity.normalise("production", "prod") == "production"  # whole tokens only
    assert parity.normalise(3, "prod") == 3


def test_logical_key_matches_across_stacks() -> None:
    dev = "urn:pulumi:dev::mlops-platform::mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-dev-raw"
    prod = "urn:pulumi:prod::mlops-platform::mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-prod-raw"
    assert parity.logical_key(dev, "dev") == parity.logical_key(prod, "prod")


def test_resource_divergence_shows_sizes_not_names() -> None:
    found = {
        d.where: d.values
        for d in parity.compare(parity.resource_columns([plan_for("dev"), plan_for("prod")]))
    }
    assert found["NodeGroup mlops-<stack>-ng-serving scalingConfig.desiredSize"] == {
        "dev": 1,
        "prod": 3,
    }
    assert "Key mlops-<stack>-data-key (exists)" not in found  # in both: not a divergence
    assert not any(where.endswith(" bucket") and "raw" in where for where in found), (
        "bucket names must normalise"
    )
    assert "Instance mlops-<stack>-tracking-db (exists)" in found  # RDS only in prod
    assert found["Instance mlops-<stack>-tracking-db (exists)"] == {"dev": "—", "prod": True}


def test_parity_command_config(project_root: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["parity", "dev", "staging", "prod", "--config-only", "--project-dir", str(project_root)],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("config: ")
    az = next(line for line in lines if line.strip().startswith("network.az_count"))
    assert az.split()[1:] == ["2", "2", "3"]
    assert not any("ephemeral.base_stack" in line for line in lines)  # same in all three


def test_parity_needs_two_stacks(project_root: Path) -> None:
    result = CliRunner().invoke(main, ["parity", "dev", "--project-dir", str(project_root)])
    assert result.exit_code == 2
    assert "at least two stacks" in result.output
