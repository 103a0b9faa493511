"""Operator start-up: where Kopf keeps its bookkeeping, the metrics endpoint, shared drivers."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import prometheus_client

from loom.api.meta import GROUP
from loom.config import OperatorConfig
from loom.drivers.kube import Kube, load_config
from loom.executors.factory import build_executor

log = logging.getLogger(__name__)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Service account in a pod, else $KUBECONFIG read at login time (not at import time)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Kopf's progress and diff-base go to annotations so status holds only what Loom reports."""
    config = OperatorConfig.from_env()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.reporting_component = config.field_manager
    settings.execution.max_workers = 8
    load_config()
    memo.config = config
    memo.kube = Kube()
    memo.executor = build_executor(config, memo.kube)
    if config.metrics_port:
        prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
        log.info("metrics on %s:%d/metrics", config.metrics_address, config.metrics_port)
