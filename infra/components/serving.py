"""ServingCluster: EKS with hardened node groups, add-ons, access, and the model server."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import defaults
from infra.components.identity import pod_identity_role
from infra.planning import iam
from infra.planning import k8s as manifests
from infra.planning.tags import resource_tags
from training_jobs import contract

# Every control-plane log type EKS offers (CKV_AWS_37).
CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
)
GPU_TAINT = ("nvidia.com/gpu", "true", "NO_SCHEDULE")
DEPLOYER_TAG = contract.TAG_DEPLOYER


@dataclass(frozen=True)
class NodeGroupSpec:
    name: str
    instance_types: tuple[str, ...]
    min_size: int
    desired_size: int
    max_size: int
    disk_size_gib: int
    capacity_type: str


@dataclass(frozen=True)
class ServingClusterArgs:
    base_name: str
    tags: dict[str, str]
    region: str
    kubernetes_version: str
    subnet_ids: pulumi.Input[list[str]]
    kms_key_arn: pulumi.Input[str]
    # Where `pulumi up` reaches the API from: the public endpoint's allowlist (empty: the
    # endpoint is private only) and the in-VPC networks the cluster security group admits.
    deployer_location: str  # "public" | "in_vpc"
    deployer_public_cidrs: tuple[str, ...]
    deployer_vpc_cidrs: tuple[str, ...]
    node_groups: tuple[NodeGroupSpec, ...]
    addon_versions: dict[str, str]
    admin_principal_arns: tuple[str, ...]
    log_retention_days: int
    deletion_protection: bool


class ServingCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self, name: str, args: ServingClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:serving:ServingCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = args.base_name

        def tags(name: str) -> dict[str, str]:
            return resource_tags(name, args.tags)

        # The cluster's physical name is fixed so its log group can exist (with retention and
        # encryption) before EKS would create one without either.
        cluster_physical_name = base
        log_group = aws.cloudwatch.LogGroup(
            f"{base}-eks-logs",
            name=f"/aws/eks/{cluster_physical_name}/cluster",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=tags(f"{base}-eks-logs"),
            opts=child,
        )
        cluster_role = aws.iam.Role(
            f"{base}-eks-role",
            assume_role_policy=json.dumps(iam.assume_role_policy("eks.amazonaws.com")),
            tags=tags(f"{base}-eks-role"),
            opts=child,
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{base}-eks-cluster-policy",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child,
        )
        public = bool(args.deployer_public_cidrs)
        cluster = aws.eks.Cluster(
            f"{base}-eks",
            name=cluster_physical_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=public,
                public_access_cidrs=list(args.deployer_public_cidrs) if public else None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"],
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=args.kms_key_arn),
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOGS),
            # The API default is EXTENDED support: 6x the control-plane price once a version
            # leaves standard support. Upgrade instead.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=True,
            ),
            deletion_protection=args.deletion_protection,
            # Read by the deployer-reach rule (MLOPS-EKS-005): where `pulumi up` runs.
            tags={**tags(f"{base}-eks"), DEPLOYER_TAG: args.deployer_location},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, cluster_policy]),
        )
        for i, cidr in enumerate(args.deployer_vpc_cidrs):
            # An in-VPC deployer reaches the private endpoint through the cluster's own
            # security group, which admits only the control plane and nodes by default.
            aws.vpc.SecurityGroupIngressRule(
                f"{base}-eks-deployer-{i}",
                security_group_id=cluster.vpc_config.cluster_security_group_id,
                description="Kubernetes API from the in-VPC deployer",
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ipv4=cidr,
                tags=tags(f"{base}-eks-deployer-{i}"),
                opts=child,
            )

        node_role = aws.iam.Role(
            f"{base}-node-role",
            assume_role_policy=json.dumps(iam.assume_role_policy("ec2.amazonaws.com")),
            tags=tags(f"{base}-node-role"),
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{base}-node-{policy.rsplit('/', 1)[-1]}",
                role=node_role.name,
                policy_arn=policy,
                opts=child,
            )
            for policy in NODE_POLICIES
        ]

        node_groups = []
        for group in args.node_groups:
            node_groups.append(self._node_group(base, group, args, cluster, node_role, attachments))

        addons = []
        # The add-on binds this role to its own service account (see below). The managed
        # policy covers EBS; volumes encrypted with the platform key also need the key
        # statements of the EKS guide's EBS CSI page (grants for the attached volume).
        ebs_role = pod_identity_role(
            f"{base}-ebs-csi",
            parent=self,
            tags=args.tags,
            managed_policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
        )
        aws.iam.RolePolicy(
            f"{base}-ebs-csi-kms",
            role=ebs_role.id,
            policy=pulumi.Output.from_input(args.kms_key_arn).apply(
                lambda arn: json.dumps(iam.ebs_csi_kms_policy(arn))
            ),
            opts=child,
        )
        for addon_name, version in sorted(args.addon_versions.items()):
            # These run as pods: they need nodes first.
            needs_nodes = addon_name in ("coredns", "aws-ebs-csi-driver", "metrics-server")
            pod_identity = (
                [
                    aws.eks.AddonPodIdentityAssociationArgs(
                        role_arn=ebs_role.arn, service_account="ebs-csi-controller-sa"
                    )
                ]
                if addon_name == "aws-ebs-csi-driver"
                else None
            )
            addons.append(
                aws.eks.Addon(
                    f"{base}-addon-{addon_name}",
                    cluster_name=cluster.name,
                    addon_name=addon_name,
                    addon_version=version,
                    resolve_conflicts_on_create="OVERWRITE",
                    resolve_conflicts_on_update="OVERWRITE",
                    pod_identity_associations=pod_identity,
                    # The VPC CNI enforces the platform's NetworkPolicies only when asked to.
                    configuration_values=(
                        json.dumps({"enableNetworkPolicy": "true"})
                        if addon_name == "vpc-cni"
                        else None
                    ),
                    tags=tags(f"{base}-addon-{addon_name}"),
                    opts=pulumi.ResourceOptions(
                        parent=self, depends_on=node_groups if needs_nodes else []
                    ),
                )
            )

        for i, principal in enumerate(args.admin_principal_arns):
            entry = aws.eks.AccessEntry(
                f"{base}-admin-{i}",
                cluster_name=cluster.name,
                principal_arn=principal,
                type="STANDARD",
                tags=tags(f"{base}-admin-{i}"),
                opts=child,
            )
            aws.eks.AccessPolicyAssociation(
                f"{base}-admin-{i}-policy",
                cluster_name=cluster.name,
                principal_arn=principal,
                policy_arn=ADMIN_POLICY,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
            )

        kubeconfig = pulumi.Output.all(
            cluster.name, cluster.endpoint, cluster.certificate_authority.data
        ).apply(
            lambda a: json.dumps(
                manifests.kubeconfig(
                    cluster_name=a[0], endpoint=a[1], ca_data=a[2], region=args.region
                )
            )
        )
        provider = k8s.Provider(
            f"{base}-k8s",
            kubeconfig=kubeconfig,
            # Fail a preview that would change objects the cluster cannot accept.
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*node_groups, *addons]),
        )
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=provider)

        # Encrypted gp3 with the platform key for every volume claim (the EBS CSI driver's).
        k8s.storage.v1.StorageClass(
            f"{base}-gp3",
            metadata={"name": "gp3"},
            provisioner="ebs.csi.aws.com",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Retain" if args.deletion_protection else "Delete",
            parameters=pulumi.Output.from_input(args.kms_key_arn).apply(
                lambda arn: {"type": "gp3", "encrypted": "true", "kmsKeyId": arn}
            ),
            opts=k8s_opts,
        )

        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority = cluster.certificate_authority.data
        self.cluster_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.provider = provider
        self.register_outputs({"cluster_name": cluster.name, "endpoint": cluster.endpoint})

    def _node_group(
        self,
        base: str,
        group: NodeGroupSpec,
        args: ServingClusterArgs,
        cluster: aws.eks.Cluster,
        node_role: aws.iam.Role,
        attachments: list[aws.iam.RolePolicyAttachment],
    ) -> aws.eks.NodeGroup:
        child = pulumi.ResourceOptions(parent=self)
        name = f"{base}-ng-{group.name}"
        template = defaults.hardened_launch_template(
            f"{name}-lt",
            volume_size_gib=group.disk_size_gib,
            tags=resource_tags(f"{name}-lt", args.tags),
            instance_tags=resource_tags(name, args.tags),
            opts=child,
        )
        gpu = group.name == "gpu"
        return aws.eks.NodeGroup(
            name,
            cluster_name=cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=args.subnet_ids,
            instance_types=list(group.instance_types),
            capacity_type=group.capacity_type,
            ami_type="AL2023_x86_64_NVIDIA" if gpu else "AL2023_x86_64_STANDARD",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=group.min_size, desired_size=group.desired_size, max_size=group.max_size
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            labels={"mlops/role": group.name},
            taints=[aws.eks.NodeGroupTaintArgs(key=k, value=v, effect=e) for k, v, e in [GPU_TAINT]]
            if gpu
            else None,
            tags=resource_tags(name, args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments),
        )
