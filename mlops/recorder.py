"""Run the real Pulumi program under recording mocks and return its resource graph.

Pulumi's `MockResourceArgs` lacks parents, dependencies and options, so the recording
happens one layer down, in the mock *monitor*, which sees the full `RegisterResource`
request. Computed values (ids, ARNs, autonamed physical names) are derived from the URN
by hashing, so every run yields the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import runpy
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from mlops.plan import Plan, PlanResource
from mlops.stackfiles import SECRET_PLACEHOLDER, Project, StackConfig
from training_jobs import contract

ACCOUNT_ID = "123456789012"

# Wire markers of Pulumi's property encoding (pulumi/runtime/rpc.py).
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
_ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
UNKNOWN_PLACEHOLDER = "[unknown]"
# An output the mock does not model, as it flows into other resources' inputs: it names the
# resource and the output, so a plan never silently omits an input that depends on it
# (and a test fails when a shipped stack's plan has one).
UNKNOWN_OUTPUT = "[unknown: {type}::{name}.{output}]"

# Properties the provider autonames (`<logical name>-<7 hex>`) when the program gives none.
# The mock does the same, deterministically, so the plan shows the physical names.
AUTONAMED: dict[str, str] = {
    "aws:s3/bucket:Bucket": "bucket",
    "aws:ecr/repository:Repository": "name",
    "aws:iam/role:Role": "name",
    "aws:iam/policy:Policy": "name",
    "aws:iam/instanceProfile:InstanceProfile": "name",
    "aws:cloudwatch/logGroup:LogGroup": "name",
    "aws:cloudwatch/eventRule:EventRule": "name",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "name",
    "aws:cloudwatch/dashboard:Dashboard": "dashboardName",
    "aws:ec2/securityGroup:SecurityGroup": "name",
    "aws:ec2/launchTemplate:LaunchTemplate": "name",
    "aws:sns/topic:Topic": "name",
    "aws:sfn/stateMachine:StateMachine": "name",
    "aws:batch/computeEnvironment:ComputeEnvironment": "name",
    "aws:batch/jobQueue:JobQueue": "name",
    "aws:batch/jobDefinition:JobDefinition": "name",
    "aws:eks/cluster:Cluster": "name",
    "aws:eks/nodeGroup:NodeGroup": "nodeGroupName",
    "aws:rds/instance:Instance": "identifier",
    "aws:rds/subnetGroup:SubnetGroup": "name",
    "aws:budgets/budget:Budget": "name",
    "aws:secretsmanager/secret:Secret": "name",
    "aws:scheduler/schedule:Schedule": "name",
    "aws:rds/parameterGroup:ParameterGroup": "name",
}
# ARN service names that differ from the SDK module name.
_ARN_SERVICE = {"cloudwatch/logGroup": "logs", "cloudwatch/eventRule": "events"}


@functools.cache
def _string_outputs(type_: str) -> tuple[str, ...]:
    """The always-present string outputs (`Output[str]`) of a resource type's SDK class."""
    package, _, rest = type_.partition(":")
    module_path, _, class_name = rest.rpartition(":")
    parts = [p for p in module_path.split("/") if p and p != "index"]
    if parts and parts[-1] == class_name[:1].lower() + class_name[1:]:
        parts.pop()  # aws-style `rds/parameterGroup`: the last part names the class's file
    try:
        module = importlib.import_module(".".join([f"pulumi_{package.replace('-', '_')}", *parts]))
        cls = getattr(module, class_name)
    except (ImportError, AttributeError):
        return ()
    from pulumi import _types

    return tuple(
        pulumi_name
        for _, pulumi_name, prop in _types._py_properties(cls)
        if str(prop.fget.__annotations__.get("return")) == "pulumi.output.Output[str]"
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any, *, reveal: bool = False) -> Any:
    """Wire-encoded property value → JSON data with secrets and unknowns made visible
    (`reveal`: secrets' mock values too, for `secret_templates` only)."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return _plain(value.get("value"), reveal=True) if reveal else SECRET_PLACEHOLDER
        if sig == _RESOURCE_SIG:
            return value.get("urn", UNKNOWN_PLACEHOLDER)
        if sig == _OUTPUT_SIG:
            if value.get("secret") and not reveal:
                return SECRET_PLACEHOLDER
            return (
                _plain(value["value"], reveal=reveal) if "value" in value else UNKNOWN_PLACEHOLDER
            )
        if sig in (_ASSET_SIG, _ARCHIVE_SIG):
            return {k: _plain(v, reveal=reveal) for k, v in value.items() if k != _SIG}
        return {k: _plain(v, reveal=reveal) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, reveal=reveal) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == rpc.UNKNOWN:
        return UNKNOWN_PLACEHOLDER
    return value


class _Mocks(pulumi.runtime.Mocks):
    """Computed state for new resources and answers to the few invokes the program makes."""

    def __init__(self, region: str, referenced_outputs: Mapping[str, Mapping[str, Any]]) -> None:
        self.region = region
        # Outputs of stacks a StackReference may name, from their own offline plans.
        self.referenced_outputs = referenced_outputs

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        typ, name = args.typ, args.name
        if typ == "pulumi:pulumi:StackReference":
            stack_name = str(inputs.get("name", name))
            # Unknown stacks read as empty: the program reports the outputs it misses.
            outputs = self.referenced_outputs.get(stack_name.rsplit("/", 1)[-1], {})
            reference: dict[str, Any] = {
                "name": stack_name,
                "outputs": dict(outputs),
                "secretOutputNames": [],
            }
            return stack_name, reference
        digest = _digest(f"{typ}::{name}")
        physical = inputs.get(AUTONAMED.get(typ, ""))
        module, _, kind = typ.partition(":")[2].partition(":")
        short = kind[:1].lower() + kind[1:]
        resource_id = physical if isinstance(physical, str) else f"{short}-{digest[:12]}"
        region, account = self.region, ACCOUNT_ID
        service = _ARN_SERVICE.get(module, module.split("/")[0])
        state: dict[str, Any] = dict(inputs)
        if typ.startswith("aws:"):
            state["arn"] = f"arn:aws:{service}:{region}:{account}:{short}/{resource_id}"
        if typ == "aws:s3/bucket:Bucket":
            state["arn"] = f"arn:aws:s3:::{resource_id}"
            state["bucketDomainName"] = f"{resource_id}.s3.amazonaws.com"
        elif typ == "aws:kms/key:Key":
            key_id = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
            resource_id = key_id
            state.update(keyId=key_id, arn=f"arn:aws:kms:{region}:{account}:key/{key_id}")
        elif typ == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = f"{account}.dkr.ecr.{region}.amazonaws.com/{resource_id}"
            state["registryId"] = account
            state["arn"] = f"arn:aws:ecr:{region}:{account}:repository/{resource_id}"
        elif typ == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{account}:role/{resource_id}"
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{region}:{account}:log-group:{resource_id}"
        elif typ == "aws:eks/cluster:Cluster":
            state["endpoint"] = f"https://{digest[:32].upper()}.gr7.{region}.eks.amazonaws.com"
            state["certificateAuthority"] = {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="}
            state["vpcConfig"] = {
                **inputs.get("vpcConfig", {}),
                "clusterSecurityGroupId": f"sg-{digest[:17]}",
                "vpcId": f"vpc-{digest[17:29]}",
            }
            state["arn"] = f"arn:aws:eks:{region}:{account}:cluster/{resource_id}"
        elif typ == "aws:secretsmanager/secret:Secret":
            # Secrets Manager appends six random characters to the name in the ARN.
            state["arn"] = (
                f"arn:aws:secretsmanager:{region}:{account}:secret:{resource_id}-{digest[:6]}"
            )
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            resource_id = f"lt-{digest[:17]}"
            state["latestVersion"] = 1
        elif typ == "aws:rds/instance:Instance":
            state["address"] = f"{resource_id}.{digest[:12]}.{region}.rds.amazonaws.com"
            state["port"] = 5432
        elif typ == "kubernetes:core/v1:Service" and inputs.get("spec", {}).get("type") == (
            "LoadBalancer"
        ):
            hostname = f"internal-{digest[:20]}.elb.{region}.amazonaws.com"
            state["status"] = {"loadBalancer": {"ingress": [{"hostname": hostname}]}}
        elif typ == "docker-build:index:Image":
            # What a registry would answer: a digest of what was built. The inputs carry the
            # build context's digest (a label), so a changed source file changes it, and the
            # same sources give the same bytes on every run.
            built = {k: v for k, v in inputs.items() if k != "registries"}
            image_digest = f"sha256:{_digest(json.dumps(built, sort_keys=True, default=str))}"
            tags = inputs.get("tags") or []
            state["digest"] = image_digest
            state["ref"] = f"{tags[0]}@{image_digest}" if tags else ""
            state["contextHash"] = _digest(json.dumps(inputs.get("labels"), sort_keys=True))
        elif typ == RANDOM_PASSWORD:
            state["result"] = _mock_password(typ, name)
        for output in _string_outputs(typ):
            if output not in state:
                state[output] = UNKNOWN_OUTPUT.format(type=typ, name=name, output=output)
        return resource_id, state

    def call(self, args: mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            arn = f"arn:aws:iam::{ACCOUNT_ID}:user/offline-plan"
            return {"accountId": ACCOUNT_ID, "arn": arn, "userId": "OFFLINE", "id": ACCOUNT_ID}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{letter}" for letter in "abcdef"]
            ids = [f"use1-az{i}" for i in range(1, 7)]
            return {"names": names, "zoneIds": ids, "id": self.region}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            registry = f"{args.args.get('registryId') or ACCOUNT_ID}.dkr.ecr.{self.region}"
            return {
                "userName": "AWS",
                # Never a real token; the program marks it secret, the plan shows [secret].
                "password": "offline-plan-registry-token",
                "authorizationToken": "offline-plan",
                "proxyEndpoint": f"https://{registry}.amazonaws.com",
                "expiresAt": "2099-01-01T00:00:00Z",
                "id": registry,
            }
        if token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            secret_id = str(args.args.get("secretId", ""))
            # Never a real secret: the program marks what it reads secret.
            return {
                "arn": secret_id,
                "secretId": secret_id,
                "secretString": f"offline-plan-{_digest(secret_id)[:16]}",
                "versionId": "offline-plan",
                "versionStages": ["AWSCURRENT"],
                "id": secret_id,
            }
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        raise NotImplementedError(f"the offline plan has no answer for invoke {token!r}")


RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_PLACEHOLDER = "{{{{random:{urn}}}}}"


def _mock_password(type_: str, name: str) -> str:
    # Never a real secret: the plan only needs a value to flow into dependents.
    return f"offline-plan-{_digest(f'{type_}::{name}')[:16]}"


def _templates(raw: Any, randoms: Mapping[str, str], path: str = "") -> dict[str, Any]:
    """Where a secret input is built from generated passwords only: its shape, with each
    password as `{{random:<urn>}}`. Never a value: the offline plan has none to show, but a
    consumer (the local platform) can generate the passwords and wire them as Pulumi would."""
    found: dict[str, Any] = {}
    if isinstance(raw, dict) and raw.get(_SIG) == _SECRET_SIG:
        revealed = _plain(raw.get("value"), reveal=True)
        text = json.dumps(revealed)
        if any(value in text for value in randoms):
            for value, urn in randoms.items():
                text = text.replace(value, RANDOM_PLACEHOLDER.format(urn=urn))
            found[path] = json.loads(text)
        return found
    if isinstance(raw, dict) and raw.get(_SIG) == _OUTPUT_SIG and "value" in raw:
        if raw.get("secret"):
            return _templates({_SIG: _SECRET_SIG, "value": raw["value"]}, randoms, path)
        return _templates(raw["value"], randoms, path)
    if isinstance(raw, dict):
        for key, value in raw.items():
            if key != _SIG:
                found |= _templates(value, randoms, f"{path}.{key}" if path else key)
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            found |= _templates(value, randoms, f"{path}[{i}]")
    return found


class _RecordingMonitor(mocks.MockMonitor):
    """A mock monitor that keeps every registration request as a plan resource."""

    def __init__(self, mocks_: _Mocks) -> None:
        super().__init__(mocks_)
        self.records: dict[str, PlanResource] = {}
        self.secret_templates: dict[str, dict[str, Any]] = {}
        self._randoms: dict[str, str] = {}  # mock password → its RandomPassword's URN
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine does not put the stack's type into its children's URNs; the base mock
        # does. Real URNs matter: tests pin them and `pulumi preview` must agree.
        if parent and parent.split("::")[2] == "pulumi:pulumi:Stack":
            parent = ""
        return super().make_urn(parent, type_, name)

    def ReadResource(self, request: Any) -> Any:
        """Reads (StackReference, `get` of existing resources) are part of the graph too."""
        urn = self.make_urn(request.parent, request.type, request.name)
        record = PlanResource(
            urn=urn,
            type=request.type,
            name=request.name,
            parent=request.parent or None,
            dependencies=sorted(set(request.dependencies) - {urn}),
            custom=True,
            protect=False,
            retain_on_delete=False,
            inputs=_plain(json_format.MessageToDict(request.properties)),
        )
        with self._lock:
            self.records[urn] = record
        return super().ReadResource(request)  # type: ignore[no-untyped-call]

    def RegisterResource(self, request: Any) -> Any:
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]
        urn = self.make_urn(request.parent, request.type, request.name)
        raw = json_format.MessageToDict(request.object)
        inputs = _plain(raw)
        if request.type == RANDOM_PASSWORD:
            with self._lock:
                self._randoms[_mock_password(request.type, request.name)] = urn
        templates = _templates(raw, dict(self._randoms))
        if templates:
            with self._lock:
                self.secret_templates[urn] = templates
        naming = AUTONAMED.get(request.type)
        if naming and naming not in inputs:
            autoname = f"{request.name}-{_digest(urn)[:7]}"
            if request.type == "aws:s3/bucket:Bucket":
                autoname = autoname.lower()
            inputs[naming] = autoname
            request.object[naming] = autoname  # the mock then sees the name, as a provider would
        dependencies = set(request.dependencies)
        for deps in request.propertyDependencies.values():
            dependencies.update(deps.urns)
        dependencies.discard(urn)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        state = _plain(json_format.MessageToDict(response.object)) if request.custom else {}
        # What the provider would compute (ids, ARNs, endpoints): in the plan, so a consumer
        # can tell which value of a dependent's inputs came from which resource.
        computed = {
            k: v
            for k, v in state.items()
            if k not in inputs
            and not (isinstance(v, str) and v.startswith("[unknown"))
            # A generated password's value is a secret in the real provider.
            and not (request.type == RANDOM_PASSWORD and k in ("result", "bcryptHash"))
        }
        if request.custom and response.id:
            computed["id"] = response.id
        record = PlanResource(
            urn=urn,
            type=request.type,
            name=request.name,
            parent=request.parent or None,
            dependencies=sorted(dependencies),
            custom=bool(request.custom),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            inputs=inputs,
            computed=computed,
        )
        with self._lock:
            self.records[urn] = record
        return response


class ProgramError(Exception):
    """The program failed under the mocks; the message is the program's own."""


def _ensure_event_loop() -> None:
    """The SDK's mocks run on the thread's current event loop; a caller that ran
    `asyncio.run` (a test of an async server, an embedding tool) leaves none behind."""
    import asyncio

    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def record(project: Project, stack: str, config: StackConfig) -> Plan:
    """Run `project`'s program for `stack` with `config` and return the recorded plan."""
    region = config.values.get("aws:region", contract.DEFAULT_REGION)
    mocks_ = _Mocks(region, _referenced_outputs(project, config))
    monitor = _RecordingMonitor(mocks_)
    settings.ROOT.set(None)  # a fresh root stack per run, also when called repeatedly
    _ensure_event_loop()
    pulumi.runtime.set_all_config(dict(config.values), list(config.secret_keys))
    quiet = logging.getLogger("mlops.plan.engine")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    mocks.set_mocks(
        mocks_, project=project.name, stack=stack, preview=False, monitor=monitor, logger=quiet
    )
    root = settings.get_root_resource()
    main = project.main / "__main__.py" if project.main.is_dir() else project.main

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")

    sys.path.insert(0, str(project.root))
    # The engine runs a program (and its providers) in the `main:` directory when that is a
    # directory; relative paths the program hands providers are relative to it.
    previous_cwd = Path.cwd()
    os.chdir(project.main if project.main.is_dir() else project.root)
    try:
        _sync_await(run_pulumi_func(program))
        outputs = _resolve_outputs(getattr(root, "outputs", {}))
    except pulumi.RunError as exc:
        raise ProgramError(str(exc)) from None
    finally:
        os.chdir(previous_cwd)
        sys.path.remove(str(project.root))

    stack_urn = f"urn:pulumi:{stack}::{project.name}::pulumi:pulumi:Stack::{project.name}-{stack}"
    resources = [
        PlanResource(
            urn=stack_urn,
            type="pulumi:pulumi:Stack",
            name=f"{project.name}-{stack}",
            parent=None,
            dependencies=[],
            custom=False,
            protect=False,
            retain_on_delete=False,
            inputs={},
        ),
        *(_reparent(r, stack_urn) for r in monitor.records.values()),
    ]
    return Plan(
        project=project.name,
        stack=stack,
        resources=resources,
        outputs=outputs,
        secret_templates=dict(monitor.secret_templates),
    )


def _referenced_outputs(project: Project, config: StackConfig) -> dict[str, dict[str, Any]]:
    """An ephemeral stack reads its base stack's outputs: plan that stack first."""
    from mlops.stackfiles import read_stack_config

    raw = config.values.get("mlops:ephemeral")
    if config.values.get("mlops:environment") != contract.ENV_EPHEMERAL:
        return {}
    base = "dev"
    if raw:
        try:
            base = str(json.loads(raw).get("base_stack", base))
        except (json.JSONDecodeError, AttributeError):
            return {}  # the program's config validation reports it
    name = base.rsplit("/", 1)[-1]
    if not project.stack_file(name).is_file():
        return {}
    return {name: record(project, name, read_stack_config(project, name)).outputs}


def _reparent(resource: PlanResource, stack_urn: str) -> PlanResource:
    """Top-level resources hang off the stack, as in real Pulumi state."""
    if resource.parent is None:
        return PlanResource(**{**resource.__dict__, "parent": stack_urn})
    return resource


def _resolve_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for name, value in outputs.items():
        out = pulumi.Output.from_input(value)
        secret = _sync_await(out.is_secret())
        resolved[name] = SECRET_PLACEHOLDER if secret else _sync_await(out.future())
    return resolved
