"""`mlops env`: per-pull-request ephemeral stacks (see `core` for the rules)."""
