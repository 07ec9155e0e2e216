"""`mlops sweep`: find what an ephemeral stack left behind in AWS, by tag, and delete it.

`select` decides (pure), `discover` lists, `delete` holds one deleter per kind, `run` ties
them into a receipt; the click command is `mlops.cli.sweep`.
"""
