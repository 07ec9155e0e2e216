"""Pull-request review on plan data alone: diff, policy, cost, time to `pulumi up`, parity.

Nothing here imports `infra.components` or needs credentials: every tool reads the offline
plan (`mlops.plan.Plan`), so it runs on pull requests from forks.
"""
