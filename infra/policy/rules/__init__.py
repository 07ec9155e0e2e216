"""One module per service; importing this package registers every rule.

The import order is the order of `RULES` (and of `mlops policy --json` and the pack's
policies): add a new service's module here, and write a module's rules in id order.
"""

# isort: off
from infra.policy.rules import s3, kms, ecr, eks, iam, ec2, rds  # noqa: F401  (they register)
from infra.policy.rules import security_groups, vpc, logs, sns, sfn, batch, tags  # noqa: F401
from infra.policy.rules import images, kubernetes, network, support  # noqa: F401
# isort: on
