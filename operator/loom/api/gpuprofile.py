"""GpuProfile: a named pod shape (GPUs, CPU/memory, placement, shared memory, NCCL env) that a
TrainingJob selects with `spec.resources.gpuProfile`, so data scientists name a shape instead of
copying scheduling details. Profiles are files in `gpu-profiles/`, shipped in the Helm chart."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from loom.api.meta import DNSLabel, Identifier, LoomModel


def _quantity_text(value: Any) -> Any:
    """Kubernetes accepts `cpu: 4` as well as `cpu: "4"`; so do profiles."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


CpuQuantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    StringConstraints(pattern=r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$", max_length=16),
    Field(description="CPU cores, e.g. 4, 0.5 or 500m."),
]
MemoryQuantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$", max_length=24),
    Field(description="Bytes with a Kubernetes suffix, e.g. 16Gi or 512Mi."),
]
ExtendedResourceName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
                      max_length=253),
]
LabelKey = Annotated[
    str,
    StringConstraints(pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
                      max_length=316),
]
LabelValue = Annotated[
    str, StringConstraints(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", max_length=63)
]

_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}


def cpu_cores(quantity: str) -> Decimal:
    """A validated CpuQuantity as cores."""
    return Decimal(quantity[:-1]) / 1000 if quantity.endswith("m") else Decimal(quantity)


def memory_bytes(quantity: str) -> Decimal:
    """A validated MemoryQuantity as bytes."""
    number = quantity.rstrip("kKMGTPi")
    return Decimal(number) * _SUFFIX[quantity[len(number):]]


class Gpu(LoomModel):
    """The accelerators each replica gets; requests and limits are both set to `count`."""

    count: int = Field(ge=1, le=16, description="GPUs (or MIG slices) per replica; torchrun starts one process each.")
    resource_name: ExtendedResourceName = Field(
        default="nvidia.com/gpu",
        description="Extended resource advertised by the device plugin, e.g. nvidia.com/gpu or nvidia.com/mig-1g.5gb.",
    )


class Quantities(LoomModel):
    cpu: CpuQuantity
    memory: MemoryQuantity


class ComputeResources(LoomModel):
    """CPU and memory per replica. Limits at or above requests, as the API server demands of pods."""

    requests: Quantities = Field(description="What the scheduler reserves on the node.")
    limits: Quantities = Field(description="What the container may use before throttling / OOM kill.")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> "ComputeResources":
        limits, requests = self.limits, self.requests
        if cpu_cores(limits.cpu) < cpu_cores(requests.cpu):
            raise ValueError(f"resources.limits.cpu {limits.cpu} is below resources.requests.cpu {requests.cpu}")
        if memory_bytes(limits.memory) < memory_bytes(requests.memory):
            raise ValueError(
                f"resources.limits.memory {limits.memory} is below resources.requests.memory {requests.memory}"
            )
        return self


class TolerationOperator(str, Enum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(str, Enum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(LoomModel):
    """A core/v1 Toleration, limited to what GPU node pools use."""

    key: LabelKey = Field(description="Taint key, e.g. nvidia.com/gpu.")
    operator: TolerationOperator = Field(default=TolerationOperator.EXISTS, description="Exists or Equal.")
    value: LabelValue | None = Field(default=None, description="Taint value; only with operator Equal.")
    effect: TaintEffect | None = Field(default=None, description="Taint effect; every effect when unset.")

    @model_validator(mode="after")
    def _value_only_with_equal(self) -> "Toleration":
        if self.operator == TolerationOperator.EXISTS.value and self.value is not None:
            raise ValueError(f"toleration {self.key}: value must be unset when operator is Exists")
        return self


class GpuProfile(LoomModel):
    """One named shape; the file `gpu-profiles/<name>.yaml` holds exactly this model."""

    name: DNSLabel = Field(description="Profile name, equal to the file name without .yaml.")
    description: str = Field(min_length=1, max_length=1024, description="What hardware this is and what it suits.")
    gpu: Gpu | None = Field(default=None, description="Accelerators per replica; unset for CPU-only.")
    resources: ComputeResources = Field(description="CPU and memory per replica.")
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Node labels the pods require, e.g. nvidia.com/gpu.product from GPU feature discovery.",
    )
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16, description="Taints the pods tolerate.")
    shm_size: MemoryQuantity = Field(
        description="Size of the memory-backed /dev/shm; PyTorch DataLoader workers pass batches through it."
    )
    env: dict[Identifier, str] = Field(
        default_factory=dict, description="Environment for every training container (NCCL, OpenMP, CUDA allocator)."
    )

    @model_validator(mode="after")
    def _shm_fits_in_memory(self) -> "GpuProfile":
        # A memory-backed emptyDir is charged to the pod's memory, so a larger one invites OOM kills.
        if memory_bytes(self.shm_size) >= memory_bytes(self.resources.limits.memory):
            raise ValueError(
                f"shmSize {self.shm_size} must be below resources.limits.memory {self.resources.limits.memory}"
            )
        return self
