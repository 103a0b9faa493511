"""Importing this package registers every Loom handler with Kopf (`kopf run -m loom.handlers`)."""

from loom.handlers import datalake, featureset, inferenceservice, lifecycle, trainingjob

__all__ = ["datalake", "featureset", "inferenceservice", "lifecycle", "trainingjob"]
