"""ServingCluster and Tracking under the mocks; Kubernetes objects against the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlops.k8s_export import kubernetes_objects, write_manifests
from mlops.plan import Plan, PlanResource
from tests.conftest import ROOT, PlanWith
from tests.infra.conftest import plan_for
from training_jobs import contract


def _one(plan: Plan, type_: str) -> PlanResource:
    (resource,) = plan.of_type(type_)
    return resource


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_cluster_is_private_encrypted_logged_and_standard_support(stack: str) -> None:
    plan = plan_for(stack)
    cluster = _one(plan, "aws:eks/cluster:Cluster")
    inputs = cluster.inputs
    assert inputs["version"] == "1.36", cluster.urn
    assert inputs["upgradePolicy"] == {"supportType": "STANDARD"}, cluster.urn
    assert inputs["encryptionConfig"] == {
        "provider": {"keyArn": plan.outputs["kms_key_arn"]},
        "resources": ["secrets"],
    }, cluster.urn
    assert sorted(inputs["enabledClusterLogTypes"]) == sorted(
        ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    ), cluster.urn
    vpc = inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True, cluster.urn
    # Where `pulumi up` runs decides the endpoint: dev deploys from a runner outside the
    # VPC (its address only); staging and prod from inside (private endpoint only, and the
    # cluster security group admits the runner's subnet on 443).
    deployer = inputs["tags"][contract.TAG_DEPLOYER]
    ingress = [
        r
        for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if cluster.urn in r.dependencies and "-eks-deployer-" in r.name
    ]
    if stack == "dev":
        assert deployer == "public"
        assert vpc["endpointPublicAccess"] is True
        assert vpc["publicAccessCidrs"] == ["203.0.113.10/32"]
        assert not ingress
    else:
        assert deployer == "in_vpc"
        assert vpc["endpointPublicAccess"] is False and "publicAccessCidrs" not in vpc
        (rule,) = ingress
        assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (443, 443)
    assert vpc["subnetIds"] == plan.outputs["private_subnet_ids"], cluster.urn
    assert inputs["deletionProtection"] is (stack == "prod"), cluster.urn
    logs = next(g for g in plan.of_type("aws:cloudwatch/logGroup:LogGroup") if "eks" in g.name)
    assert logs.inputs["name"] == f"/aws/eks/{inputs['name']}/cluster"
    assert logs.urn in cluster.dependencies, "log group must exist before EKS creates its own"


def test_node_groups_use_imdsv2_and_encrypted_volumes(prod_plan: Plan) -> None:
    groups = {
        g.inputs["labels"]["mlops/role"]: g
        for g in prod_plan.of_type("aws:eks/nodeGroup:NodeGroup")
    }
    assert set(groups) == {"system", "serving"}
    assert groups["serving"].inputs["scalingConfig"] == {
        "minSize": 3,
        "desiredSize": 3,
        "maxSize": 12,
    }
    assert groups["serving"].inputs["instanceTypes"] == ["m6i.xlarge", "m6a.xlarge"]
    templates = {
        t.inputs["name"]: t for t in prod_plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    }
    for group in groups.values():
        template = next(t for t in templates.values() if t.name == f"{group.name}-lt")
        metadata = template.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required", template.urn
        assert metadata["httpPutResponseHopLimit"] == 1, template.urn
        ebs = template.inputs["blockDeviceMappings"][0]["ebs"]
        # The account's EBS key, not the platform key: the service-linked roles that launch
        # the instances need no key policy (see infra/defaults.py), yet volumes are encrypted.
        assert ebs["encrypted"] == "true" and "kmsKeyId" not in ebs, template.urn
        assert group.inputs["launchTemplate"]["id"].startswith("lt-"), group.urn


def test_a_gpu_node_group_gets_the_nvidia_ami_and_a_taint(plan_with: PlanWith) -> None:
    # No shipped stack has one: dev's node groups plus a group named `gpu`, as a user adds it.
    gpu = {"name": "gpu", "instance_types": ["g5.xlarge", "g5.2xlarge"], "min_size": 0,
           "desired_size": 0, "max_size": 2}  # fmt: skip
    dev_groups = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["mlops:serving"]
    plan = plan_with("dev", serving={"node_groups": [*dev_groups["node_groups"], gpu]})
    groups = {
        g.inputs["labels"]["mlops/role"]: g for g in plan.of_type("aws:eks/nodeGroup:NodeGroup")
    }
    assert set(groups) == {"system", "serving", "gpu"}
    group = groups["gpu"]
    # Only pods that tolerate the taint (GPU workloads) land on these instances.
    assert group.inputs["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
    ], group.urn
    assert group.inputs["instanceTypes"] == ["g5.xlarge", "g5.2xlarge"], group.urn
    assert group.inputs["amiType"] == "AL2023_x86_64_NVIDIA", group.urn  # drivers included
    assert group.inputs["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 2}
    for role in ("system", "serving"):
        assert "taints" not in groups[role].inputs, groups[role].urn
        assert groups[role].inputs["amiType"] == "AL2023_x86_64_STANDARD", groups[role].urn


def test_addons_are_pinned_and_ebs_uses_pod_identity(dev_plan: Plan) -> None:
    addons = {a.inputs["addonName"]: a for a in dev_plan.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {
        "vpc-cni",
        "coredns",
        "kube-proxy",
        "eks-pod-identity-agent",
        "aws-ebs-csi-driver",
        "metrics-server",  # the HPA's CPU metrics
    }
    for addon in addons.values():
        assert addon.inputs["addonVersion"].startswith("v"), addon.urn
    ebs = addons["aws-ebs-csi-driver"].inputs["podIdentityAssociations"][0]
    assert ebs["serviceAccount"] == "ebs-csi-controller-sa"
    node_groups = {g.urn for g in dev_plan.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert node_groups <= set(addons["coredns"].dependencies), "coredns needs nodes first"
    assert node_groups <= set(addons["metrics-server"].dependencies)
    assert addons["kube-proxy"].inputs["addonVersion"].startswith("v1.36.")


def test_admin_access_entries_from_config() -> None:
    plan = plan_for("staging")
    (entry,) = plan.of_type("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["principalArn"] == "arn:aws:iam::123456789012:role/ml-platform-admin"
    (association,) = plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert association.inputs["policyArn"].endswith("/AmazonEKSClusterAdminPolicy")
    assert entry.urn in association.dependencies


def test_model_server_role_reads_models_and_writes_captures_only(dev_plan: Plan) -> None:
    policy = next(
        p for p in dev_plan.of_type("aws:iam/rolePolicy:RolePolicy") if "model-server" in p.name
    )
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    models, captures = (
        f"arn:aws:s3:::{dev_plan.outputs[k]}" for k in ("models_bucket", "captures_bucket")
    )
    assert statements["WriteObjects"]["Resource"] == [f"{captures}/*"]
    assert set(statements["ReadObjects"]["Resource"]) == {f"{models}/*", f"{captures}/*"}
    (association,) = [
        a
        for a in dev_plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if a.inputs["serviceAccount"] == "model-server"
    ]
    assert association.inputs["namespace"] == "mlops-serving"


def _objects(plan: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in kubernetes_objects(plan)}


def test_model_server_deployment_is_hardened(dev_plan: Plan) -> None:
    deployment = _objects(dev_plan)[("Deployment", "model-server")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert container["resources"]["limits"] == {"cpu": "2000m", "memory": "2Gi"}
    assert container["imagePullPolicy"] == "Always"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MLOPS_SERVE_CAPTURE_BUCKET"] == dev_plan.outputs["captures_bucket"]
    # The registry is read with the platform's MLflow account, its password from a Secret.
    assert env["MLFLOW_TRACKING_PASSWORD"] == {
        "secretKeyRef": {"name": "model-server-tracking", "key": "password"}
    }
    assert _objects(dev_plan)[("Secret", "model-server-tracking")]["stringData"] == "[secret]"
    # In the cluster MLflow is reached by Service name; jobs use the load balancer address.
    assert env["MLOPS_SERVE_TRACKING_URI"] == "http://mlflow.mlflow.svc.cluster.local:5000"
    drain = int(env["MLOPS_SERVE_DRAIN_GRACE_S"])
    assert (
        pod["terminationGracePeriodSeconds"]
        > drain + container["lifecycle"]["preStop"]["sleep"]["seconds"]
    )
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone", "kubernetes.io/hostname"
    }  # fmt: skip
    assert container["image"] == dev_plan.outputs["server_image"]
    assert container["image"].startswith(f"{dev_plan.outputs['server_repository_url']}@sha256:")
    objects = _objects(dev_plan)
    assert objects[("HorizontalPodAutoscaler", "model-server")]["spec"]["minReplicas"] == 1
    assert objects[("PodDisruptionBudget", "model-server")]["spec"]["maxUnavailable"] == 1
    assert objects[("Service", "model-server")]["spec"]["type"] == "ClusterIP"


def test_tracking_uses_rds_in_prod_with_secret_password(prod_plan: Plan) -> None:
    db = _one(prod_plan, "aws:rds/instance:Instance")
    inputs = db.inputs
    assert db.protect and db.retain_on_delete, db.urn
    assert (
        inputs["storageEncrypted"] is True
        and inputs["kmsKeyId"] == prod_plan.outputs["kms_key_arn"]
    )
    assert inputs["deletionProtection"] is True and inputs["multiAz"] is True
    assert inputs["backupRetentionPeriod"] == 14 and inputs["publiclyAccessible"] is False
    assert inputs["password"] == "[secret]", "the DB password must stay a Pulumi secret"
    secret = _objects(prod_plan)[("Secret", "mlflow-server")]
    assert secret["stringData"] == "[secret]"
    # The database URI (with its password) reaches MLflow only through the Secret: never
    # on the command line, where `ps` on the node would show it.
    container = _objects(prod_plan)[("Deployment", "mlflow")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert not any("postgresql" in arg for arg in container["command"] + container["args"])
    backend = next(e for e in container["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI")
    assert backend["valueFrom"] == {
        "secretKeyRef": {"name": "mlflow-server", "key": "backend-store-uri"}
    }
    assert "password" not in json.dumps(prod_plan.outputs).lower()
    sg = next(
        g
        for g in prod_plan.of_type("aws:ec2/securityGroup:SecurityGroup")
        if g.name.endswith("db-sg")
    )
    assert "ingress" not in sg.inputs
    (rule,) = [
        r
        for r in prod_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.endswith("db-from-cluster")
    ]
    assert rule.inputs["fromPort"] == 5432 and "cidrIpv4" not in rule.inputs
    assert rule.inputs["referencedSecurityGroupId"].startswith("sg-")
    assert sg.urn in rule.dependencies
    db = _one(prod_plan, "aws:rds/instance:Instance")
    cluster = _one(prod_plan, "aws:eks/cluster:Cluster")
    assert cluster.urn not in db.dependencies, "the database must not wait for the cluster"


def test_batch_jobs_reach_mlflow_through_an_internal_load_balancer(dev_plan: Plan) -> None:
    service = _objects(dev_plan)[("Service", "mlflow")]
    assert service["spec"]["type"] == "LoadBalancer"
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    uri = dev_plan.outputs["tracking_uri"]
    assert uri.startswith("http://internal-") and uri.endswith(":5000")
    definition = dev_plan.of_type("aws:batch/jobDefinition:JobDefinition")[0]
    env = {
        e["name"]: e["value"]
        for e in json.loads(definition.inputs["containerProperties"])["environment"]
    }
    assert env["MLOPS_TRACKING_URI"] == uri
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_dev_tracking_uses_a_volume_not_rds(dev_plan: Plan) -> None:
    assert not dev_plan.of_type("aws:rds/instance:Instance")
    objects = _objects(dev_plan)
    assert ("PersistentVolumeClaim", "mlflow-data") in objects
    args = objects[("Deployment", "mlflow")]["spec"]["template"]["spec"]["containers"][0]["args"]
    # Clients write artifacts to the models bucket themselves; the server does not proxy.
    assert (
        args[args.index("--default-artifact-root") + 1]
        == f"s3://{dev_plan.outputs['models_bucket']}/mlflow"
    )
    assert "--no-serve-artifacts" in args


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_kubernetes_objects_validate_against_the_cluster_version_schema(
    stack: str, tmp_path: Path
) -> None:
    plan = plan_for(stack)
    version = _one(plan, "aws:eks/cluster:Cluster").inputs["version"]
    written = write_manifests(plan, tmp_path)
    assert len(written) >= 11
    for path in written:
        obj = yaml.safe_load(path.read_text())
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs of the Prometheus operator: checked in test_monitoring.py
        if obj["kind"] == "Secret" and obj["stringData"] == "[secret]":
            obj["stringData"] = {"uri": "redacted"}  # the plan shows "[secret]" in its place
        kubernetes_validate.validate(obj, f"{version}.0", strict=True)


def test_schema_validation_catches_a_broken_object(dev_plan: Plan) -> None:
    deployment = _objects(dev_plan)[("Deployment", "model-server")]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.36.0", strict=True)


def test_local_stack_declares_the_same_workloads_on_its_own_context(
    local_plan: Plan, dev_plan: Plan
) -> None:
    # No EKS: the workloads go to the kubeconfig context the stack names (a k3d cluster).
    assert not local_plan.of_type("aws:eks/cluster:Cluster")
    (provider,) = local_plan.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "k3d-mlops"
    local, dev = _objects(local_plan), _objects(dev_plan)
    for key in (("Deployment", "mlflow"), ("Deployment", "model-server")):
        # Built by the same components: the same container, but for what the stacks set.
        (container,) = local[key]["spec"]["template"]["spec"]["containers"]
        (theirs,) = dev[key]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == theirs["command"] and container["ports"] == theirs["ports"]
        assert container["securityContext"] == theirs["securityContext"]
        assert container["image"].startswith("localhost:5001/")
    # Without Pod Identity the service accounts name their roles.
    roles = {
        o["metadata"]["name"]: o["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        for o in kubernetes_objects(local_plan)
        if o["kind"] == "ServiceAccount"
    }
    assert set(roles) == {"mlflow", "model-server"}
    assert not local_plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert local_plan.outputs["tracking_uri"] == "http://127.0.0.1:5000"


def test_workloads_admit_traffic_only_on_their_serving_port(dev_plan: Plan) -> None:
    objects = _objects(dev_plan)
    for name in ("model-server", "mlflow"):
        policy = objects[("NetworkPolicy", name)]["spec"]
        pod_labels = objects[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items(), name
        assert policy["policyTypes"] == ["Ingress"]
        assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": "http"}]}], name
    addons = {a.inputs["addonName"]: a for a in dev_plan.of_type("aws:eks/addon:Addon")}
    assert json.loads(addons["vpc-cni"].inputs["configurationValues"]) == {
        "enableNetworkPolicy": "true"
    }
