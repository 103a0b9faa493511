"""The only code that talks to external systems: Kubernetes, Iceberg, Feast, MLflow, Prometheus."""
