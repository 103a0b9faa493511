"""Fuzzing Loom's four custom resources against a real control plane and the real operator:
manifests drawn from the CRD schemas and mutations of the samples, each classified by what the API
server and the operator did with it (`make fuzz`; a small seeded run is part of `make test`)."""
