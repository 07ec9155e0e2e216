"""`pulumi preview --policy-pack infra/policy`: the platform's policy rules, enforced.

The rules live beside this file (`infra/policy/rules/`, standard library and pydantic) so
`mlops policy` runs the very same functions offline; this entry point only puts the
repository on the path.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import PolicyPack

from infra.policy.pack import build_policies

PolicyPack(name="mlops-platform", policies=build_policies())  # type: ignore[arg-type]
