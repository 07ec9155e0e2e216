"""The model server: `python -m training_jobs.serve`.

Serves `models:/<name>@<alias>` from the MLflow registry over HTTP JSON, speaking the
`mlflow models serve` scoring protocol. Pure pieces (`inputs`, `batching`, `capture`) know
nothing of HTTP; `app` is the ASGI application; `main` wires settings, clients and uvicorn.
"""
