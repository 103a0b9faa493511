"""Operator start-up and clean-up: where Kopf keeps its bookkeeping, the metrics endpoint, and the
long-lived parts every handler shares through `memo` (Kubernetes client, executor, wake-ups, scheduler)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import prometheus_client

from loom.api.kinds import KINDS
from loom.api.meta import GROUP
from loom.config import OperatorConfig
from loom.handlers.bookkeeping import CompactDiffBaseStorage, ResettingProgressStorage
from loom.handlers.reconcile import FINALIZER
from loom.handlers.triggers import Scheduler, Wakeups
from loom.services.runtime import connect
from loom.services.watch_cache import WatchCache

log = logging.getLogger(__name__)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """Service account in a pod, else $KUBECONFIG read at login time (not at import time)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        """Kopf's progress and diff-base go to annotations so status holds only what Loom reports;
        a large diff-base is kept as a digest, and an unreadable annotation is reset (bookkeeping)."""
        settings.persistence.progress_storage = ResettingProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = CompactDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
        settings.persistence.finalizer = FINALIZER
        settings.posting.reporting_component = config.field_manager
        settings.execution.max_workers = 8
        # A deleted object's finalizer is released once its loop exited; the loop exits as soon as its
        # last reconcile is done, so look again in a second, not in Kopf's default minute.
        settings.background.cancellation_polling = 1
        memo.config = config
        # Reconciles wait on the API server and the driven systems far more than they compute.
        memo.reconcilers = ThreadPoolExecutor(config.reconcile_workers, thread_name_prefix="reconcile")
        memo.wakeups = Wakeups(KINDS)
        memo.watched = WatchCache()  # filled by the watches of `links`, read by the services
        runtime = connect(config, memo.wakeups.run_changed)
        memo.kube, memo.executor = memo.watched.reads(runtime.kube), runtime.executor
        memo.scheduler = Scheduler(memo.wakeups)
        memo.scheduler.start()
        memo.executor.start()
        if config.metrics_port:
            prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
            log.info("metrics on %s:%d/metrics", config.metrics_address, config.metrics_port)

    @kopf.on.cleanup(registry=registry)
    def stop(memo: kopf.Memo, **_: Any) -> None:
        """Stop the threads started above, so a stopped operator starts nothing more."""
        if hasattr(memo, "executor"):
            memo.executor.stop()
        if hasattr(memo, "scheduler"):
            memo.scheduler.stop()
        if hasattr(memo, "reconcilers"):
            memo.reconcilers.shutdown(wait=False, cancel_futures=True)
