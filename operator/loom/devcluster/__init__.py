"""The embedded local Kubernetes control plane behind `loom dev up|down|env` and the integration tests."""

from .binaries import Binaries, BinariesError, ensure_binaries
from .cluster import (
    Cluster,
    ClusterError,
    ClusterStatus,
    default_state_dir,
    down,
    env,
    status,
    up,
    use_existing_cluster,
)
from .pki import Pki, ensure_pki

__all__ = [
    "Binaries",
    "BinariesError",
    "Cluster",
    "ClusterError",
    "ClusterStatus",
    "Pki",
    "default_state_dir",
    "down",
    "ensure_binaries",
    "ensure_pki",
    "env",
    "status",
    "up",
    "use_existing_cluster",
]
