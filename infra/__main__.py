"""The Pulumi program: config in, platform out, exports. No resource logic here."""

import pulumi

from infra import config, platform

try:
    settings = config.from_pulumi()
except config.ConfigError as exc:
    # RunError is reported by the engine as a plain message, without a traceback.
    raise pulumi.RunError(str(exc)) from None

for name, value in platform.build(settings).outputs().items():
    pulumi.export(name, value)
