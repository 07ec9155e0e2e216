"""Drift job: captured inferences vs the champion's training data, feature by feature.

`stats` holds the pure statistics, `columns` streams one feature at a time from local
Parquet, `analysis` turns them into findings, `sources` reads S3 and MLflow, `report`
renders JSON and HTML, and `job` is the settings, `run` and `main`.
"""
