"""The embedded local platform: moto_server and an MLflow server on loopback, seeded from the
offline plan, for demos and end-to-end tests. Imports boto3 and MLflow, never `infra` or Pulumi.
"""
