"""Loom: a Kubernetes-native MLOps operator."""
