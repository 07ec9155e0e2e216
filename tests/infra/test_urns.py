"""Logical names are a public contract: renaming a stateful resource replaces it.

If one of these fails, you renamed or re-parented a bucket, key or repository. Either undo
it or add `aliases=[...]` to the resource so Pulumi moves the state instead of deleting.
"""

from __future__ import annotations

from mlops.plan import Plan

P = "urn:pulumi:prod::mlops-platform::"
PINNED_PROD_URNS = {
    f"{P}mlops:datalake:DataLake::mlops-prod-datalake",
    f"{P}mlops:datalake:DataLake$aws:kms/key:Key::mlops-prod-data-key",
    f"{P}mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-prod-access-logs",
    f"{P}mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-prod-raw",
    f"{P}mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-prod-curated",
    f"{P}mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-prod-models",
    f"{P}mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-prod-captures",
    f"{P}mlops:registry:Registry$aws:ecr/repository:Repository::mlops-prod-jobs",
    f"{P}mlops:registry:Registry$aws:ecr/repository:Repository::mlops-prod-server",
    f"{P}mlops:registry:Registry$aws:ecr/repository:Repository::mlops-prod-tracking",
    f"{P}mlops:network:Network$aws:ec2/vpc:Vpc::mlops-prod-vpc",
    f"{P}mlops:serving:ServingCluster$aws:eks/cluster:Cluster::mlops-prod-eks",
    f"{P}mlops:tracking:Tracking$aws:rds/instance:Instance::mlops-prod-tracking-db",
}
STATEFUL_TYPES = {
    "aws:s3/bucket:Bucket",
    "aws:kms/key:Key",
    "aws:ecr/repository:Repository",
    "aws:eks/cluster:Cluster",
    "aws:rds/instance:Instance",
}


def test_stateful_urns_are_pinned(prod_plan: Plan) -> None:
    urns = set(prod_plan.by_urn())
    missing = PINNED_PROD_URNS - urns
    assert not missing, f"renamed or re-parented: {sorted(missing)}"
    stateful = {r.urn for r in prod_plan.resources if r.type in STATEFUL_TYPES}
    unpinned = stateful - PINNED_PROD_URNS
    assert not unpinned, f"pin these new stateful resources here: {sorted(unpinned)}"
