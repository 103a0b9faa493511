"""How every step of the pipeline reads Loom: one object through the Kubernetes API, polled until its
status says what the step waits for.

kfp runs a lightweight component from its function's source alone, so a component cannot import this
module in its pod. These functions reach each component as `additional_funcs` (kfp copies their source
beside the component's), so each keeps its imports inside its body.
"""

from typing import Any, Callable, Optional


def loom_api() -> Any:
    """The custom objects API: in-cluster credentials in a pod, the kubeconfig elsewhere."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def loom_object(namespace: str, plural: str, name: str) -> dict:
    """The object as the API server has it."""
    return loom_api().get_namespaced_custom_object("loom.dev", "v1alpha1", namespace, plural, name)


def await_loom(namespace: str, plural: str, name: str, look: Callable[[dict], Optional[Any]], what: str,
               timeout_seconds: int, poll_seconds: float = 2.0) -> Any:
    """The first value `look` finds in the object (None: not yet). `look` raises when what is awaited
    can no longer come (a failed run), so a step fails with the operator's reason instead of timing out."""
    import time

    deadline = time.monotonic() + timeout_seconds
    while True:
        found = look(loom_object(namespace, plural, name))
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{plural}/{name} in {namespace}: no {what} after {timeout_seconds}s")
        time.sleep(poll_seconds)
