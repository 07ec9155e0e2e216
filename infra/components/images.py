"""Images: the workload images, built from this repository and pushed by `pulumi up`.

Each image is a `docker_build.Image` (BuildKit) pushed into its ECR repository under a tag
unique to the stack and to what was built; workloads reference it by digest
(`<repository>@sha256:...`), never by tag, so a code change is a reviewed, rolling change
and a registry tag moving cannot change what runs. A team that builds in its own pipeline
passes digests instead and nothing is built here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from infra.planning.images import PLATFORM


@dataclass(frozen=True)
class ImageBuild:
    kind: str
    repository_url: pulumi.Input[str]
    tag: str  # contract.image_tag(stack, build digest)
    context: str  # relative to the program's working directory, as the provider reads it
    containerfile: str
    labels: dict[str, str]


@dataclass(frozen=True)
class ImagesArgs:
    base_name: str
    builds: tuple[ImageBuild, ...]
    # ECR registry to log in to (its account id); None for a registry without auth.
    registry_id: pulumi.Input[str] | None
    # Digest references given by the stack's config: kind -> `<repository>@sha256:...`.
    given: dict[str, pulumi.Input[str]]


class Images(pulumi.ComponentResource):
    refs: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:images:Images", name, None, opts)
        refs = {kind: pulumi.Output.from_input(ref) for kind, ref in args.given.items()}
        token = (
            aws.ecr.get_authorization_token_output(registry_id=args.registry_id)
            if args.builds and args.registry_id is not None
            else None
        )
        for build in args.builds:
            repository = pulumi.Output.from_input(build.repository_url)
            registries = None
            if token is not None:
                registries = [
                    docker_build.RegistryArgs(
                        address=repository,
                        username=token.user_name,
                        password=pulumi.Output.secret(token.password),
                    )
                ]
            image = docker_build.Image(
                f"{args.base_name}-image-{build.kind}",
                push=True,
                tags=[pulumi.Output.concat(repository, ":", build.tag)],
                context=docker_build.BuildContextArgs(location=build.context),
                dockerfile=docker_build.DockerfileArgs(location=build.containerfile),
                platforms=[docker_build.Platform(PLATFORM)],
                labels=build.labels,
                registries=registries,
                opts=pulumi.ResourceOptions(parent=self),
            )
            refs[build.kind] = pulumi.Output.concat(repository, "@", image.digest)
        self.refs = refs
        self.register_outputs({"refs": refs})
