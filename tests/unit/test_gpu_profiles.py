"""The shipped GPU profiles parse, and a broken profile is refused with the file and field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loom.api.gpuprofile import GpuProfile, cpu_cores, memory_bytes
from loom.gpuprofiles import GpuProfileError, load_profile, load_profiles

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "gpu-profiles"
REQUIRED = {
    "cpu", "nvidia-t4", "nvidia-l4", "nvidia-a10g", "nvidia-a100-40gb", "nvidia-a100-mig-1g-5gb", "nvidia-h100-80gb",
    "nvidia-a100-80gb", "nvidia-h200-141gb", "nvidia-a100-80gb-mig-1g-10gb", "nvidia-a100-80gb-mig-3g-40gb",
    "nvidia-h100-80gb-mig-1g-20gb",
}
# MIG profile -> (the device plugin's mixed-strategy resource, the whole GPU's product label or None).
MIG = {
    "nvidia-a100-mig-1g-5gb": ("nvidia.com/mig-1g.5gb", None),
    "nvidia-a100-80gb-mig-1g-10gb": ("nvidia.com/mig-1g.10gb", "NVIDIA-A100-SXM4-80GB"),
    "nvidia-a100-80gb-mig-3g-40gb": ("nvidia.com/mig-3g.40gb", "NVIDIA-A100-SXM4-80GB"),
    "nvidia-h100-80gb-mig-1g-20gb": ("nvidia.com/mig-1g.20gb", "NVIDIA-H100-80GB-HBM3"),
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, GpuProfile]:
    return load_profiles(PROFILES)


def test_every_shipped_profile_parses(shipped: dict[str, GpuProfile]) -> None:
    assert REQUIRED <= shipped.keys()
    assert len(shipped) == len(list(PROFILES.glob("*.yaml")))


def test_gpu_profiles_are_placed_on_gpu_nodes(shipped: dict[str, GpuProfile]) -> None:
    for name, profile in shipped.items():
        if name == "cpu":
            assert profile.gpu is None and not profile.node_selector and not profile.tolerations
            continue
        assert profile.gpu is not None and profile.gpu.count >= 1, name
        assert profile.node_selector, f"{name} has no nodeSelector"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in [
            t.to_wire() for t in profile.tolerations
        ], name
        assert {"NCCL_DEBUG", "NCCL_IB_DISABLE", "OMP_NUM_THREADS"} <= profile.env.keys(), name


@pytest.mark.parametrize("name", sorted(MIG))
def test_mig_profiles_use_the_mig_resource_and_no_peer_to_peer(shipped: dict[str, GpuProfile], name: str) -> None:
    resource, product = MIG[name]
    mig = shipped[name]
    assert mig.gpu is not None and (mig.gpu.resource_name, mig.gpu.count) == (resource, 1)
    # The mixed strategy leaves gpu.product as the whole GPU's model (the single strategy would rewrite it).
    assert mig.node_selector.get("nvidia.com/mig.strategy") == "mixed"
    assert mig.node_selector.get("nvidia.com/gpu.product") == product
    assert mig.env["NCCL_P2P_DISABLE"] == "1"


def test_only_mig_profiles_ask_for_mig_slices(shipped: dict[str, GpuProfile]) -> None:
    assert {n for n, p in shipped.items() if p.gpu and p.gpu.resource_name.startswith("nvidia.com/mig-")} == MIG.keys()


def test_product_labels_match_gpu_feature_discovery(shipped: dict[str, GpuProfile]) -> None:
    products = {name: p.node_selector.get("nvidia.com/gpu.product") for name, p in shipped.items()}
    assert products["nvidia-t4"] == "Tesla-T4"
    assert products["nvidia-l4"] == "NVIDIA-L4"
    assert products["nvidia-a10g"] == "NVIDIA-A10G"
    assert products["nvidia-a100-40gb"] == "NVIDIA-A100-SXM4-40GB"
    assert products["nvidia-h100-80gb"] == "NVIDIA-H100-80GB-HBM3"
    assert products["nvidia-a100-80gb"] == "NVIDIA-A100-SXM4-80GB"
    assert products["nvidia-h200-141gb"] == "NVIDIA-H200"


def test_quantities() -> None:
    assert cpu_cores("500m") == cpu_cores("0.5") == 0.5
    assert memory_bytes("1Gi") == 2**30
    assert memory_bytes("1.5G") == 1_500_000_000
    assert memory_bytes("512") == 512


def test_numbers_are_accepted_like_kubernetes_does() -> None:
    profile = GpuProfile.model_validate({
        "name": "x", "description": "d", "resources": {"requests": {"cpu": 2, "memory": "1Gi"},
                                                      "limits": {"cpu": 2.5, "memory": "2Gi"}},
        "shmSize": "256Mi",
    })
    assert (profile.resources.requests.cpu, profile.resources.limits.cpu) == ("2", "2.5")


def _broken(tmp_path: Path, name: str = "nvidia-t4", **changes: object) -> Path:
    data = yaml.safe_load((PROFILES / "nvidia-t4.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"gpu__count": 0}, "gpu.count: Input should be greater than or equal to 1"),
        ({"gpu__resourceName": "gpu"}, "gpu.resourceName: String should match pattern"),
        ({"resources__requests__memory": "12GB"}, "resources.requests.memory: String should match pattern"),
        ({"shmSize": "lots"}, "shmSize: String should match pattern"),
        ({"nodeSelectr": {"a": "b"}}, "nodeSelectr: Extra inputs are not permitted"),
        ({"tolerations": [{"key": "nvidia.com/gpu", "effect": "Sometimes"}]}, "tolerations[0].effect: Input should be"),
        ({"env": {"NCCL-DEBUG": "INFO"}}, "env.NCCL-DEBUG.[key]: String should match pattern"),
        ({"resources__limits__cpu": "2"}, "resources.limits.cpu 2 is below resources.requests.cpu 3"),
        ({"shmSize": "14Gi"}, "shmSize 14Gi must be below resources.limits.memory 14Gi"),
    ],
)
def test_broken_profile_error_names_file_and_field(tmp_path: Path, changes: dict[str, object], expected: str) -> None:
    path = _broken(tmp_path, **changes)
    with pytest.raises(GpuProfileError) as err:
        load_profile(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nvidia-t4.yaml"
    data = yaml.safe_load((PROFILES / "nvidia-t4.yaml").read_text())
    del data["shmSize"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(GpuProfileError, match=r"nvidia-t4\.yaml: shmSize: Field required"):
        load_profile(path)


def test_name_must_match_file_name(tmp_path: Path) -> None:
    _broken(tmp_path, name="renamed")
    with pytest.raises(GpuProfileError, match="name 'nvidia-t4' must equal the file name 'renamed'"):
        load_profiles(tmp_path)


def test_not_a_mapping_and_bad_yaml_and_missing_dir(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(GpuProfileError, match=r"list\.yaml: a profile must be a YAML mapping, not list"):
        load_profiles(tmp_path)
    (tmp_path / "list.yaml").write_text("name: [unclosed\n")
    with pytest.raises(GpuProfileError, match=r"list\.yaml: cannot read profile"):
        load_profiles(tmp_path)
    with pytest.raises(GpuProfileError, match="does not exist"):
        load_profiles(tmp_path / "absent")


def test_configmap_style_mount_is_read(tmp_path: Path) -> None:
    """Kubernetes mounts ConfigMap keys as symlinks into a hidden ..data dir; the loader reads through them."""
    data = tmp_path / "..2026_01_01"
    data.mkdir()
    (data / "cpu.yaml").write_text((PROFILES / "cpu.yaml").read_text())
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "cpu.yaml").symlink_to("..data/cpu.yaml")
    assert list(load_profiles(tmp_path)) == ["cpu"]
