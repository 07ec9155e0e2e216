"""Which property changes make the provider replace a resource, for every type we declare.

Offline we have no provider to ask for a diff, so this table stands in for its `ForceNew`
schema. Paths use the Pulumi wire (camelCase) names as they appear in plan inputs; a change
at a path, or anywhere below it, forces a replacement. Sources: the AWS provider's schema
(Terraform `ForceNew` attributes, pulumi-aws 7), the Kubernetes API's immutable fields, and
the random provider's `keepers` semantics. A test fails when a shipped plan uses a type that
is missing here, so a new resource type cannot slip into review unclassified.

`delete_before_replace` marks types whose replacement cannot run create-before-delete
because the physical identity is unique (a fixed name, one-per-parent association): the
old one is deleted first, so there is a window without it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplaceRule:
    paths: tuple[str, ...]
    delete_before_replace: bool = False
    note: str = ""


# pulumi-aws 7 gives every resource a `region` input; moving it re-creates the resource.
_AWS_COMMON = ("region",)
_K8S_COMMON = ("metadata.name", "metadata.namespace")
_S3_COMPANION = ("bucket", "expectedBucketOwner")


def _aws(*paths: str, dbr: bool = False, note: str = "") -> ReplaceRule:
    return ReplaceRule(paths + _AWS_COMMON, dbr, note)


def _k8s(*paths: str, dbr: bool = True, note: str = "") -> ReplaceRule:
    # Kubernetes objects with a fixed metadata.name must be deleted before re-creation.
    return ReplaceRule(_K8S_COMMON + paths, dbr, note)


REPLACE_ON: dict[str, ReplaceRule] = {
    # --- networking -------------------------------------------------------------------
    "aws:ec2/vpc:Vpc": _aws("cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"),
    "aws:ec2/subnet:Subnet": _aws(
        "vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId", "outpostArn", "ipv6Native"
    ),
    "aws:ec2/internetGateway:InternetGateway": _aws(),
    "aws:ec2/eip:Eip": _aws(
        "domain", "address", "customerOwnedIpv4Pool", "networkBorderGroup", "publicIpv4Pool"
    ),
    "aws:ec2/natGateway:NatGateway": _aws(
        "allocationId", "subnetId", "connectivityType", "privateIp"
    ),
    "aws:ec2/routeTable:RouteTable": _aws("vpcId"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _aws(
        "subnetId", "gatewayId", dbr=True, note="a subnet has exactly one route table"
    ),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _aws(
        "vpcId", "serviceName", "vpcEndpointType", "serviceRegion"
    ),
    "aws:ec2/flowLog:FlowLog": _aws(
        "vpcId",
        "subnetId",
        "eniId",
        "iamRoleArn",
        "logDestination",
        "logDestinationType",
        "trafficType",
        "logFormat",
        "maxAggregationInterval",
        "destinationOptions",
        "deliverCrossAccountRole",
    ),
    "aws:ec2/securityGroup:SecurityGroup": _aws("name", "namePrefix", "vpcId", "description"),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _aws("vpcId"),
    "aws:ec2/securityGroupRule:SecurityGroupRule": _aws(
        "type",
        "securityGroupId",
        "fromPort",
        "toPort",
        "protocol",
        "cidrBlocks",
        "ipv6CidrBlocks",
        "prefixListIds",
        "sourceSecurityGroupId",
        "self",
        dbr=True,
        note="an identical rule cannot exist twice in one group",
    ),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _aws("securityGroupId"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _aws("securityGroupId"),
    "aws:ec2/launchTemplate:LaunchTemplate": _aws(
        "name", "namePrefix", note="other changes add a version in place"
    ),
    # --- data lake ----------------------------------------------------------------------
    "aws:kms/key:Key": _aws(
        "customerMasterKeySpec", "keyUsage", "multiRegion", "customKeyStoreId", "xksKeyId"
    ),
    "aws:kms/alias:Alias": _aws("name", "namePrefix", dbr=True, note="alias names are unique"),
    "aws:s3/bucket:Bucket": _aws("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _aws(*_S3_COMPANION),
    "aws:s3/bucketLogging:BucketLogging": _aws(*_S3_COMPANION),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _aws("bucket"),
    "aws:s3/bucketPolicy:BucketPolicy": _aws("bucket"),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _aws("bucket"),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _aws(
        *_S3_COMPANION
    ),
    "aws:s3/bucketVersioning:BucketVersioning": _aws(*_S3_COMPANION, "mfa"),
    # --- registry -----------------------------------------------------------------------
    "aws:ecr/repository:Repository": _aws(
        "name", "encryptionConfigurations", note="encryption is fixed at creation"
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": _aws("repository"),
    # --- IAM ----------------------------------------------------------------------------
    "aws:iam/role:Role": _aws("name", "namePrefix", "path"),
    "aws:iam/rolePolicy:RolePolicy": _aws("name", "namePrefix", "role"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _aws("role", "policyArn"),
    "aws:iam/instanceProfile:InstanceProfile": _aws("name", "namePrefix", "path"),
    "aws:iam/policy:Policy": _aws("name", "namePrefix", "path"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _aws("url"),
    # --- training and pipeline ----------------------------------------------------------
    "aws:batch/computeEnvironment:ComputeEnvironment": _aws(
        "name",
        "namePrefix",
        "type",
        "eksConfiguration",
        "computeResources.type",
        "computeResources.allocationStrategy",
        "computeResources.bidPercentage",
        "computeResources.ec2KeyPair",
        "computeResources.imageId",
        "computeResources.placementGroup",
        "computeResources.spotIamFleetRole",
        "computeResources.ec2Configurations",
    ),
    "aws:batch/jobQueue:JobQueue": _aws("name"),
    "aws:batch/jobDefinition:JobDefinition": _aws(
        "name", "type", note="other changes register a new revision in place"
    ),
    "aws:cloudwatch/logGroup:LogGroup": _aws("name", "namePrefix", "logGroupClass"),
    "aws:cloudwatch/eventRule:EventRule": _aws("name", "namePrefix", "eventBusName"),
    "aws:cloudwatch/eventTarget:EventTarget": _aws("rule", "targetId", "eventBusName"),
    "aws:sfn/stateMachine:StateMachine": _aws("name", "namePrefix", "type"),
    # --- monitoring ---------------------------------------------------------------------
    "aws:sns/topic:Topic": _aws("name", "namePrefix", "fifoTopic"),
    "aws:sns/topicSubscription:TopicSubscription": _aws("topic", "protocol", "endpoint"),
    "aws:sns/topicPolicy:TopicPolicy": _aws("arn"),
    "aws:scheduler/schedule:Schedule": _aws("name", "namePrefix", "groupName"),
    # --- secrets ------------------------------------------------------------------------
    "aws:secretsmanager/secret:Secret": _aws("name", "namePrefix"),
    "aws:secretsmanager/secretVersion:SecretVersion": _aws(
        "secretId", "secretString", "secretBinary", note="a new value is a new version"
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": _aws("name"),
    "aws:cloudwatch/dashboard:Dashboard": _aws("dashboardName"),
    "aws:budgets/budget:Budget": _aws("accountId", "name", "namePrefix"),
    # --- serving cluster ----------------------------------------------------------------
    "aws:eks/cluster:Cluster": _aws(
        "name",
        "roleArn",
        "vpcConfig.subnetIds",
        "vpcConfig.securityGroupIds",
        "kubernetesNetworkConfig.serviceIpv4Cidr",
        "kubernetesNetworkConfig.ipFamily",
        "encryptionConfig.provider.keyArn",
        "outpostConfig",
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "bootstrapSelfManagedAddons",
        note="replacing the cluster replaces every Kubernetes object on it",
    ),
    "aws:eks/nodeGroup:NodeGroup": _aws(
        "clusterName",
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "nodeRoleArn",
        "subnetIds",
        "amiType",
        "capacityType",
        "diskSize",
        "instanceTypes",
        "remoteAccess",
        "launchTemplate.id",
        "launchTemplate.name",
    ),
    "aws:eks/addon:Addon": _aws(
        "clusterName", "addonName", dbr=True, note="one add-on of a name per cluster"
    ),
    "aws:eks/accessEntry:AccessEntry": _aws(
        "clusterName", "principalArn", "type", dbr=True, note="one entry per principal"
    ),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _aws(
        "clusterName", "principalArn", "policyArn", "accessScope", dbr=True
    ),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": _aws(
        "clusterName",
        "namespace",
        "serviceAccount",
        dbr=True,
        note="one association per service account",
    ),
    # --- tracking database --------------------------------------------------------------
    "aws:rds/instance:Instance": _aws(
        "identifier",
        "identifierPrefix",
        "engine",
        "storageEncrypted",
        "kmsKeyId",
        "availabilityZone",
        "dbName",
        "username",
        "characterSetName",
        "ncharCharacterSetName",
        "timezone",
        "snapshotIdentifier",
        "restoreToPointInTime",
        "s3Import",
        "customIamInstanceProfile",
    ),
    "aws:rds/subnetGroup:SubnetGroup": _aws("name", "namePrefix"),
    "aws:rds/parameterGroup:ParameterGroup": _aws("name", "namePrefix", "family"),
    # --- providers and references -------------------------------------------------------
    "pulumi:pulumi:StackReference": ReplaceRule(
        (), note="a read of another stack's outputs: nothing is created or destroyed"
    ),
    "pulumi:providers:aws": ReplaceRule(
        ("region",), note="replacing a provider replaces every resource it manages"
    ),
    "pulumi:providers:kubernetes": ReplaceRule(
        ("cluster", "context"),
        note="pointing the provider at another cluster replaces every object it manages",
    ),
    # --- Kubernetes objects -------------------------------------------------------------
    "kubernetes:core/v1:Namespace": _k8s(),
    "kubernetes:core/v1:ServiceAccount": _k8s(),
    "kubernetes:core/v1:Service": _k8s("spec.clusterIP", "spec.clusterIPs", "spec.ipFamilies"),
    "kubernetes:core/v1:ConfigMap": _k8s("immutable"),
    "kubernetes:core/v1:Secret": _k8s("type", "immutable"),
    "kubernetes:apps/v1:Deployment": _k8s("spec.selector"),
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": _k8s(),
    "kubernetes:policy/v1:PodDisruptionBudget": _k8s(),
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": _k8s(),
    "kubernetes:helm.sh/v3:Release": ReplaceRule(
        ("name", "namespace"), True, "a release name is unique within its namespace"
    ),
    "kubernetes:core/v1:PersistentVolumeClaim": _k8s(
        "spec.storageClassName",
        "spec.accessModes",
        "spec.selector",
        "spec.volumeName",
        "spec.volumeMode",
        note="replacing a claim replaces its volume: the data is gone unless reclaimPolicy Retain",
    ),
    "kubernetes:storage.k8s.io/v1:StorageClass": _k8s(
        "provisioner", "parameters", "reclaimPolicy", "volumeBindingMode", "allowedTopologies"
    ),
    # CustomResource objects register under their own apiVersion/kind type token.
    "kubernetes:apiextensions.k8s.io:CustomResource": _k8s("apiVersion", "kind"),
    "kubernetes:monitoring.coreos.com/v1:ServiceMonitor": _k8s(),
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule": _k8s(),
    # --- random -------------------------------------------------------------------------
    # --- images -----------------------------------------------------------------------
    # The provider rebuilds and pushes in place on any change (an update): what rolls is
    # every workload whose image reference takes the new digest (see `mlops diff`).
    "docker-build:index:Image": ReplaceRule((), note="a change rebuilds and pushes in place"),
    "random:index/randomPassword:RandomPassword": ReplaceRule(
        (
            "length",
            "special",
            "upper",
            "lower",
            "numeric",
            "minUpper",
            "minLower",
            "minNumeric",
            "minSpecial",
            "overrideSpecial",
            "keepers",
        ),
        note="a new password: whatever stored the old one must be updated",
    ),
}


def needs_entry(type_: str, custom: bool) -> bool:
    """Components and the stack itself have no provider diff, so no entry."""
    return custom and type_ != "pulumi:pulumi:Stack"


def path_matches(changed: str, rule_path: str) -> bool:
    """`vpcConfig.subnetIds[1]` is under `vpcConfig.subnetIds`; `namePrefix` is not `name`."""
    if changed == rule_path:
        return True
    return changed.startswith(rule_path) and changed[len(rule_path)] in ".["


def replacing_paths(type_: str, changed_paths: list[str]) -> list[str]:
    """The changed paths that force a replacement; unknown types never guess."""
    rule = REPLACE_ON.get(type_)
    if rule is None:
        return []
    return [p for p in changed_paths if any(path_matches(p, r) for r in rule.paths)]
