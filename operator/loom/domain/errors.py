"""Errors every layer may raise or catch, so callers need not import the layer that raised them."""

from __future__ import annotations


class SecretNotFoundError(LookupError):
    """A referenced Secret (or a key in it) does not exist (yet); services report it and look again later."""


class TrainingKindMissingError(LookupError):
    """The cluster has no CRD for the Kubeflow kind a training workload needs (TrainJob or PyTorchJob);
    the message names what to install, or the other backend to choose."""
