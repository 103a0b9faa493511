"""Operator start-up and clean-up: where Kopf keeps its bookkeeping, the metrics endpoint, and the
long-lived parts every handler shares through `memo` (Kubernetes client, executor, wake-ups, scheduler)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import prometheus_client

from loom.api.kinds import KINDS
from loom.api.meta import GROUP
from loom.config import OperatorConfig
from loom.handlers.bookkeeping import CompactDiffBaseStorage, ResettingProgressStorage
from loom.handlers.loops import Loops
from loom.handlers.reconcile import FINALIZER
from loom.handlers.triggers import Scheduler, Wakeups
from loom.services.runtime import api_session, connect, start_driver_helper, stop_driver_helper

log = logging.getLogger(__name__)
# A worker waits this long for more events of its object before it exits and frees its slot.
OBJECT_WORKER_IDLE_SECONDS = 1.0
EVENT_POSTER_IDLE_SECONDS = 0.05


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        """Service account in a pod, else $KUBECONFIG read at login time (not at import time); Kopf
        talks through a session with a bounded connection pool (`api_connections`)."""
        info = await asyncio.to_thread(
            lambda: kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs))
        return None if info is None else api_session(info, config)

    @kopf.on.startup(registry=registry)
    def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        """Kopf's progress and diff-base go to annotations so status holds only what Loom reports;
        a large diff-base is kept as a digest, and an unreadable annotation is reset (bookkeeping)."""
        settings.persistence.progress_storage = ResettingProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = CompactDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
        settings.persistence.finalizer = FINALIZER
        settings.posting.reporting_component = config.field_manager
        settings.execution.max_workers = 8
        # Events are posted by a few workers, not one per object: a burst of new objects would open a
        # TLS connection (and its buffers) per object in flight.
        settings.posting.worker_limit = 4
        # A worker lets go of its slot soon after its object has nothing more to post: Kopf's default 1 s
        # of lingering let four slots post ~12 Events/s, so a burst's Events queued for minutes.
        settings.posting.idle_timeout = EVENT_POSTER_IDLE_SECONDS
        # Kopf runs one worker per object with pending events, each holding its body and handler frames:
        # a burst of thousands of new or deleted objects would run all of them at once (hundreds of MiB
        # that the allocator keeps afterwards). With a bound, the others wait in Kopf's scheduler holding
        # only their raw events (it does not slow the watch down; those events are what a burst costs).
        settings.queueing.worker_limit = config.object_workers
        settings.queueing.idle_timeout = OBJECT_WORKER_IDLE_SECONDS
        memo.config = config
        # Reconciles wait on the API server and the driven systems far more than they compute.
        memo.reconcilers = ThreadPoolExecutor(config.reconcile_workers, thread_name_prefix="reconcile")
        memo.wakeups = Wakeups(KINDS)
        memo.loops = Loops()  # the objects' reconcile loops, started by their watch events
        runtime = connect(config, memo.wakeups.run_changed)
        # Filled by the watches of `links` and `runs`, read by the services and the executor.
        memo.watched = runtime.informer
        memo.kube, memo.executor = runtime.kube, runtime.executor
        memo.scheduler = Scheduler(memo.wakeups)
        memo.scheduler.start()
        memo.executor.start()
        memo.driver_helper = start_driver_helper(config)
        if config.metrics_port:
            prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
            log.info("metrics on %s:%d/metrics", config.metrics_address, config.metrics_port)

    @kopf.on.cleanup(registry=registry)
    def stop(memo: kopf.Memo, **_: Any) -> None:
        """Stop the threads started above, so a stopped operator starts nothing more."""
        if hasattr(memo, "loops"):
            memo.loops.stop()
        if hasattr(memo, "executor"):
            memo.executor.stop()
        if hasattr(memo, "scheduler"):
            memo.scheduler.stop()
        if hasattr(memo, "reconcilers"):
            memo.reconcilers.shutdown(wait=False, cancel_futures=True)
        if getattr(memo, "driver_helper", False):
            stop_driver_helper()
