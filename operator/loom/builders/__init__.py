"""Pure functions: typed spec -> desired child manifests (Jobs, PyTorchJob, SeldonDeployment). No I/O."""
