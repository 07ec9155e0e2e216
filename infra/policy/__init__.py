"""The `pulumi_policy` pack: the rules of `mlops.review.policy`, enforced by `pulumi preview`."""
