"""The local platform: the `local` stack's plan run on this machine's container engine and
an AWS emulator. Never imported by the workload code (`training_jobs`) and never in a
workload image."""
