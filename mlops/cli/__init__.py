"""`mlops`: the platform's command line. Thin: parse, call a pure function, print.

Every command is registered here, and only here. The command modules import `stacks`,
`options` and `errors` beside them, never this module, so importing one never cycles.
"""

from __future__ import annotations

import click

from mlops.cli import env, images, plan, review, sweep, verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Provision and review the MLOps platform; offline tools need no cloud credentials."""


main.add_command(plan.plan_command)
main.add_command(plan.config_reference_command)
main.add_command(review.diff_command)
main.add_command(review.policy_command)
main.add_command(review.cost_command)
main.add_command(review.parity_command)
main.add_command(env.env_group)
main.add_command(images.images_group)
main.add_command(sweep.sweep_command)
main.add_command(verify.verify_command)
