"""Loom's recommender as an MLServer custom runtime (`serve.runtime.Recommender`, with components/ on
PYTHONPATH), for the serve environment (.venv-serve: MLServer, onnxruntime, numpy, redis; no torch,
MLflow or Feast). It serves a model version's files as components/train/export.py writes them."""
