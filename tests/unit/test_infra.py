"""The deployment files in infra/ and docs/DEPLOY.md: images, the compose cluster, the KubeRay manifests.

Offline and fast: nothing is built, started or applied (no Docker engine or Kubernetes cluster is
assumed). The checks are structural and about consistency: every image comes from a Dockerfile of
infra/docker (or is an official image), every `seqarena` command used exists in the CLI, only the
dashboard and the MLflow UI are published and only on 127.0.0.1, every secret comes from the env file
or a Kubernetes Secret, one Ray token reaches every Ray node and client, Ray Tune's storage is shared.
The Kubernetes objects are validated against the Kubernetes OpenAPI schemas that `kubernetes-validate`
bundles; the RayCluster against the reduced schema in infra/k8s/schemas/ (see docs/DEPLOY.md).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tomllib
import warnings
from collections.abc import Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
DOCKER = INFRA / "docker"
COMPOSE_DIR = INFRA / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
HOSTNET_FILE = COMPOSE_DIR / "compose.hostnet.yaml"
K8S = INFRA / "k8s"
RAYCLUSTER_SCHEMA = K8S / "schemas" / "raycluster-ray.io-v1.json"
DEPLOY_DOC = REPO / "docs" / "DEPLOY.md"
DOCKERFILES = [DOCKER / "Dockerfile.cpu", DOCKER / "Dockerfile.cuda"]  # the seqarena images
POSTGRES_DOCKERFILE = DOCKER / "Dockerfile.postgres"  # for machines that cannot pull the official image
S3_DOCKERFILE = DOCKER / "Dockerfile.s3"  # moto's S3 server, for compose.hostnet.yaml's storage
DEPLOY_SCRIPTS = [REPO / "scripts" / name for name in ("deploy_base.sh", "deploy_images.sh", "deploy_docker_cli.sh",
                                                        "deploy_check.sh")]

# Commands that compose, k8s and DEPLOY.md may use before they exist in seqarena.cli (none at present).
# A planned command that is already in the CLI raises a warning naming it.
PLANNED: set[str] = set()

#: Kubernetes versions whose OpenAPI schemas (bundled by kubernetes-validate) the manifests must pass.
K8S_VERSIONS = ("1.30", "1.34")
#: Images used without a Dockerfile of ours: official images only, each pinned to a version.
OFFICIAL_IMAGES = {"postgres"}
#: The only ports published on the host: the MLflow UI and the dashboard.
PUBLISHED_PORTS = {5000, 8501}
#: Names of environment variables that carry a secret (a password, a token, a URL with credentials).
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|DB_URL|STORE_URI|DATABASE_URL", re.IGNORECASE)
#: A URL with a password in it (`scheme://user:password@host`).
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
RAY_TOKEN_SECRET = {"name": "seqarena-secrets", "key": "ray-auth-token"}
SHARED_HOME = "/var/lib/seqarena"
#: The variables that put Tune's experiments in a bucket (docs/DEPLOY.md): written in compose.hostnet.yaml,
#: and the credentials, which come from the secrets file.
STORAGE_VARS = {"SEQARENA_STORAGE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"}
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
#: The services of compose.hostnet.yaml that are not in compose.yaml: the S3 server and its bucket step.
HOSTNET_ONLY = {"ray-worker-2", "s3", "s3-bucket"}
#: Service attributes of the Compose Specification (https://compose-spec.io) that a service may use here;
#: a key outside this set is a typo (Compose would reject it).
COMPOSE_SERVICE_KEYS = {
    "build", "command", "container_name", "cpus", "depends_on", "deploy", "entrypoint", "env_file",
    "environment", "expose", "extra_hosts", "healthcheck", "image", "init", "labels", "mem_limit",
    "networks", "ports", "profiles", "pull_policy", "restart", "shm_size", "stop_grace_period",
    "stop_signal", "ulimits", "user", "volumes", "working_dir",
}


# ----------------------------------------------------------------------------------------------- loading

@cache
def compose() -> dict[str, Any]:
    """compose.yaml as Docker Compose reads it (PyYAML resolves its `<<` merge keys the same way)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and data.get("services"), "compose.yaml has no services"
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


@cache
def hostnet() -> dict[str, dict[str, Any]]:
    """compose.hostnet.yaml's services, `${VAR:-default}` replaced by its default (as Compose does when
    VAR is unset)."""
    data = yaml.safe_load(interpolate(HOSTNET_FILE.read_text()))
    return data["services"]


def interpolate(text: str) -> str:
    """Compose's `${VAR:-default}` as its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, mapping or list form, as a dict."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def env_files(service: dict[str, Any]) -> list[str]:
    found = service.get("env_file") or []
    found = [found] if isinstance(found, str) else found
    return [interpolate(item["path"] if isinstance(item, dict) else item) for item in found]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@cache
def k8s_objects() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, object) of every resource that kustomization.yaml lists."""
    found = []
    for name in kustomization()["resources"]:
        found += [(name, doc) for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return tuple(found)


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_objects() if doc["kind"] == kind]


def raycluster() -> dict[str, Any]:
    (cluster,) = k8s_kind("RayCluster")
    return cluster


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, pod spec) of every Deployment and of every RayCluster group."""
    for deployment in k8s_kind("Deployment"):
        yield deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]
    spec = raycluster()["spec"]
    yield "ray-head", spec["headGroupSpec"]["template"]["spec"]
    for group in spec["workerGroupSpecs"]:
        yield f"ray-{group['groupName']}", group["template"]["spec"]


def k8s_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for owner, pod in pod_specs():
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield f"{owner}/{container['name']}", container


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            parsed.append((instruction.upper(), " ".join(rest.split())))
    return parsed


def base_image(path: Path) -> str:
    """The image a Dockerfile starts from by default: its FROM, an `${ARG}` resolved to the ARG's default."""
    steps = dockerfile(path)
    image = next(rest for ins, rest in steps if ins == "FROM").split()[0]
    match = re.fullmatch(r"\$\{?(\w+)\}?", image)
    return dockerfile_arg(path, match.group(1)) if match else image


def dockerfile_arg(path: Path, name: str) -> str:
    values = [rest.split("=", 1)[1] for ins, rest in dockerfile(path) if ins == "ARG" and rest.startswith(f"{name}=")]
    assert len(values) == 1, f"{path.name}: ARG {name}=... once"
    return values[0]


def secrets_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (COMPOSE_DIR / "secrets.env.example").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


# ----------------------------------------------------------------------------------------------- images

@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_pinned_installs_torch_first_and_runs_seqarena_unprivileged(path: Path) -> None:
    steps = dockerfile(path)
    check_pinned_base(path)
    runs = [rest for instruction, rest in steps if instruction == "RUN"]
    torch_step = next(i for i, run in enumerate(runs) if re.search(r"pip install .*\"?torch==", run))
    package_step = next(i for i, run in enumerate(runs) if "pip install --no-cache-dir /tmp/src" in run)
    assert torch_step < package_step, f"{path.name}: torch must be installed before seqarena"
    assert dockerfile_arg(path, "TORCH_VERSION") == "2.13.0"
    users = [rest for instruction, rest in steps if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"{path.name}: runs as root"
    assert ("ENTRYPOINT", '["seqarena"]') in steps


def check_pinned_base(path: Path) -> None:
    image = base_image(path)
    tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
    assert "@sha256:" in image or re.search(r"\d", tag), f"{path.name}: FROM {image} is not pinned"
    assert "latest" not in tag, f"{path.name}: FROM {image}"


def test_the_cpu_image_takes_torch_from_the_cpu_index() -> None:
    path = DOCKER / "Dockerfile.cpu"
    runs = " ".join(rest for instruction, rest in dockerfile(path) if instruction == "RUN")
    assert dockerfile_arg(path, "TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    assert '--index-url "${TORCH_INDEX_URL}"' in runs and '"torch==${TORCH_VERSION}+cpu"' in runs


@pytest.mark.parametrize("path", [*DOCKERFILES, POSTGRES_DOCKERFILE, S3_DOCKERFILE], ids=lambda p: p.name)
def test_the_base_image_and_pip_settings_are_build_arguments_defaulting_to_public_ones(path: Path) -> None:
    """One set of Dockerfiles for users (the public python image, PyPI) and for machines behind a mirror or
    a TLS-inspecting proxy (scripts/deploy_images.sh passes the local base, index and CA bundle)."""
    steps = dockerfile(path)
    assert steps[0] == ("ARG", f"BASE_IMAGE={base_image(path)}") and steps[1] == ("FROM", "${BASE_IMAGE}")
    check_pinned_base(path)
    if path in (*DOCKERFILES, S3_DOCKERFILE):
        assert base_image(path).startswith("python:3.11")
        assert dockerfile_arg(path, "PIP_INDEX_URL") == "https://pypi.org/simple"
        assert dockerfile_arg(path, "PIP_CERT") == "/etc/ssl/certs/ca-certificates.crt"
        assert not any(ins == "ENV" and "PIP_CERT" in rest for ins, rest in steps), "the bundle path stays a build arg"


def test_no_path_of_the_build_machine_is_written_in_the_deployment_files() -> None:
    """The mirror, the CA bundle and the torch wheel are found at run time by the deploy scripts."""
    machine = re.compile(r"/opt/wheels|/opt/pypi|file:///|snapshot\.debian\.org|/root/|/work/")
    for path in [*DOCKER.glob("*"), *COMPOSE_DIR.glob("*.yaml"), *DEPLOY_SCRIPTS]:
        if path.is_file():
            assert not machine.search(path.read_text()), f"{path.name} names a path of one machine"


@pytest.mark.parametrize("path", [*DEPLOY_SCRIPTS, DOCKER / "postgres-entrypoint.sh"], ids=lambda p: p.name)
def test_the_deploy_scripts_are_valid_shell(path: Path) -> None:
    shell = shutil.which("bash" if path.suffix == ".sh" and path.parent.name == "scripts" else "sh")
    if shell:
        done = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr


def test_the_postgres_image_keeps_the_official_images_contract() -> None:
    """compose files use POSTGRES_USER/PASSWORD/DB, /docker-entrypoint-initdb.d and PGDATA as the official
    image reads them; Dockerfile.postgres's entrypoint honours each."""
    script = (DOCKER / "postgres-entrypoint.sh").read_text()
    for needed in ("POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB", "/docker-entrypoint-initdb.d/*.sql",
                   '"$PGDATA/PG_VERSION"', 'exec postgres -D "$PGDATA"', '"$@"'):
        assert needed in script, needed
    steps = dockerfile(POSTGRES_DOCKERFILE)
    assert ("ENTRYPOINT", '["postgres-entrypoint"]') in steps and ("USER", "postgres") in steps
    assert "/var/lib/postgresql/data" in POSTGRES_DOCKERFILE.read_text()


def test_every_image_has_the_same_python_and_ray_as_the_cluster() -> None:
    """Ray refuses a node or driver whose Ray or Python (down to the patch) differs from the cluster's."""
    bases = {base_image(path) for path in DOCKERFILES}
    assert len(bases) == 1, f"the images start from different Pythons: {bases}"
    ray_versions = {dockerfile_arg(path, "RAY_VERSION") for path in DOCKERFILES}
    assert ray_versions == {raycluster()["spec"]["rayVersion"]}
    for path in DOCKERFILES:
        assert 'pip install --no-cache-dir "ray[default,tune]==${RAY_VERSION}"' in path.read_text()


@pytest.mark.parametrize("path", [*DOCKERFILES, S3_DOCKERFILE], ids=lambda p: p.name)
def test_dockerfile_holds_no_secret_and_copies_only_what_its_ignore_file_lets_in(path: Path) -> None:
    steps = dockerfile(path)
    for instruction, rest in steps:
        if instruction in ("ARG", "ENV"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest):
                assert not SECRET_NAME.search(name), f"{path.name}: {instruction} {name} looks like a secret"
        assert not URL_WITH_PASSWORD.search(rest), f"{path.name}: a URL with a password"
    ignore = Path(f"{path}.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, f"{path.name}.dockerignore must leave everything out by default"
    for instruction, rest in steps:
        if instruction == "COPY":
            *sources, _ = [word for word in rest.split() if not word.startswith("--")]
            for source in sources:
                assert source in allowed, f"{path.name}: COPY {source} is left out of the build context"
                assert (REPO / source).exists(), f"{path.name}: COPY {source}: no such path in the repository"
                assert "secret" not in source.lower()


def test_join_ray_is_valid_sh_and_adds_a_node_without_resources() -> None:
    script = DOCKER / "join-ray.sh"
    text = script.read_text()
    assert '--num-cpus=0 --num-gpus=0' in text and 'exec "$@"' in text and '--address="$RAY_ADDRESS"' in text
    sh = shutil.which("sh")
    if sh:
        done = subprocess.run([sh, "-n", str(script)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------- compose

def test_compose_services_use_known_keys_and_images_built_here_or_official() -> None:
    for name, service in services().items():
        unknown = set(service) - COMPOSE_SERVICE_KEYS
        assert not unknown, f"{name}: unknown compose keys {unknown}"
        image = service.get("image", "")
        if "build" in service:
            build = service["build"]
            assert (COMPOSE_DIR / build["context"]).resolve() == REPO, f"{name}: build context is not the repo root"
            assert (REPO / build["dockerfile"]).resolve().parent == DOCKER, f"{name}: {build['dockerfile']}"
            assert (REPO / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"
            assert image.startswith("seqarena-"), f"{name}: name the image it builds"
        else:
            repository, _, tag = image.partition(":")
            assert repository in OFFICIAL_IMAGES, f"{name}: {image} is neither built here nor official"
            assert re.search(r"\d", tag) and "latest" not in tag, f"{name}: {image} is not pinned"


def test_compose_published_ports_are_the_dashboard_and_mlflow_on_localhost_only() -> None:
    published = set()
    for name, service in services().items():
        assert service.get("network_mode") is None, f"{name}: network_mode bypasses port publishing"
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip, host_port = port.get("host_ip"), int(port["published"])
            else:
                parts = str(port).split(":")
                assert len(parts) == 3, f"{name}: {port} must name the host IP 127.0.0.1"
                host_ip, host_port = parts[0], int(parts[1])
            assert host_ip == "127.0.0.1", f"{name}: {port} is published beyond 127.0.0.1"
            published.add(host_port)
    assert published == PUBLISHED_PORTS


def test_compose_secrets_come_only_from_the_env_file() -> None:
    example = secrets_example()
    assert set(example) == {"POSTGRES_PASSWORD", "SEQARENA_DB_URL", "MLFLOW_BACKEND_STORE_URI", "RAY_AUTH_TOKEN",
                            "SEQARENA_DASHBOARD_TOKEN"}
    assert all("change-me" in value for value in example.values()), "secrets.env.example holds placeholders only"
    assert "secrets.env" in (COMPOSE_DIR / ".gitignore").read_text().split()
    for name, service in services().items():
        for key, value in environment(service).items():
            assert not SECRET_NAME.search(key), f"{name}: {key} is written in compose.yaml, not in secrets.env"
            assert not URL_WITH_PASSWORD.search(value), f"{name}: {key} holds a password"
        for path in env_files(service):
            assert path == "secrets.env", f"{name}: env_file {path}"
    text = COMPOSE_FILE.read_text()
    assert not URL_WITH_PASSWORD.search(text) and "change-me" not in text


def ray_participants() -> dict[str, dict[str, Any]]:
    """Compose services that are Ray nodes (`ray start`, join-ray) or Ray clients (RAY_ADDRESS)."""
    found = {}
    for name, service in services().items():
        entrypoint = service.get("entrypoint") or []
        if entrypoint[:1] in (["ray"], ["join-ray"]) or "RAY_ADDRESS" in environment(service):
            found[name] = service
    return found


def test_compose_one_ray_token_reaches_every_ray_node_and_client() -> None:
    participants = ray_participants()
    assert {"ray-head", "ray-worker", "ray-gpu-worker", "seqarena-worker"} <= set(participants)
    for name, service in participants.items():
        env = environment(service)
        assert env.get("RAY_AUTH_MODE") == "token", f"{name}: token authentication is off"
        assert "secrets.env" in env_files(service), f"{name}: no RAY_AUTH_TOKEN (secrets.env)"
        assert "RAY_AUTH_TOKEN" not in env
    head = services()["ray-head"]
    assert head["entrypoint"] == ["ray"] and "--head" in head["command"] and "--port=6379" in head["command"]
    for name in ("ray-worker", "ray-gpu-worker"):
        assert "--address=ray-head:6379" in services()[name]["command"]
    for name, service in participants.items():
        if "RAY_ADDRESS" in environment(service):
            assert environment(service)["RAY_ADDRESS"] == "ray-head:6379", name


def test_compose_ray_tune_storage_is_one_volume_shared_by_nodes_drivers_and_dashboard() -> None:
    sharing = {*ray_participants(), "dashboard"}
    for name in sharing:
        service = services()[name]
        assert environment(service).get("SEQARENA_HOME") == SHARED_HOME, name
        assert f"seqarena-home:{SHARED_HOME}" in service["volumes"], f"{name} does not mount seqarena-home"
    assert "seqarena-home" in compose()["volumes"]


def test_compose_dependencies_wait_for_healthchecks() -> None:
    for name, service in services().items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in services(), f"{name} depends on unknown {target}"
            assert rule.get("condition") in ("service_healthy", "service_started"), f"{name} -> {target}"
            if rule["condition"] == "service_healthy":
                assert "test" in services()[target].get("healthcheck", {}), f"{target} has no healthcheck"
    for name in ("postgres", "mlflow", "ray-head", "dashboard"):
        assert services()[name]["healthcheck"]["test"][0] == "CMD", name
    worker = services()["seqarena-worker"]["depends_on"]
    assert {target for target, rule in worker.items() if rule["condition"] == "service_healthy"} >= {
        "postgres", "mlflow", "ray-head"}


def test_compose_gpu_worker_reserves_an_nvidia_gpu_in_the_gpu_profile() -> None:
    gpu = services()["ray-gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "infra/docker/Dockerfile.cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert all("profiles" not in services()[name] for name in ("ray-head", "ray-worker", "seqarena-worker"))


def test_compose_mlflow_server_stores_in_postgres_and_proxies_artifacts() -> None:
    mlflow = services()["mlflow"]
    check_mlflow_args(mlflow["command"])
    assert environment(mlflow)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert secrets_example()["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert secrets_example()["SEQARENA_DB_URL"].endswith("@postgres:5432/seqarena")
    init = " ".join(path.read_text() for path in (COMPOSE_DIR / "postgres-init").glob("*.sql"))
    assert re.search(r"CREATE DATABASE mlflow\b", init)
    assert "./postgres-init:/docker-entrypoint-initdb.d:ro" in services()["postgres"]["volumes"]


def check_mlflow_args(args: list[str]) -> None:
    assert args[0] == "server"
    flags = {flag: (args[i + 1] if i + 1 < len(args) else "") for i, flag in enumerate(args) if flag.startswith("--")}
    assert flags["--workers"] == "1" and "--serve-artifacts" in flags
    assert flags["--artifacts-destination"].startswith("/var/lib/")
    assert "localhost:5000" in flags["--allowed-hosts"].split(",")
    assert "--backend-store-uri" not in flags, "the backend store URI comes from the secret (MLFLOW_BACKEND_STORE_URI)"


# ------------------------------------------------------------------------- compose on host networking

def flags(args: list[str]) -> dict[str, str]:
    """`--name=value` and `--name value` options of a command line, by name."""
    found = {}
    for i, word in enumerate(args):
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            nxt = args[i + 1] if i + 1 < len(args) else ""
            found[name] = value if eq else ("" if nxt.startswith("--") else nxt)
    return found


def test_hostnet_runs_the_services_of_compose_on_loopback_without_published_ports() -> None:
    """scripts/deploy_check.sh tests compose.hostnet.yaml: it must be compose.yaml's cluster, on 127.0.0.1."""
    net = hostnet()
    cpu_services = {name for name, s in services().items() if not s.get("profiles")}
    assert set(net) == cpu_services | HOSTNET_ONLY
    for name, service in net.items():
        assert service["network_mode"] == "host" and "ports" not in service, name
        assert set(service) <= COMPOSE_SERVICE_KEYS | {"network_mode"}, name
        assert env_files(service) == ["secrets.env"], name
        if name not in ("postgres", "s3", "s3-bucket"):
            assert service["image"] == services()[name.removesuffix("-2")]["image"], name
    assert net["postgres"]["image"] == services()["postgres"]["image"]  # POSTGRES_IMAGE unset: the official one
    assert "listen_addresses=127.0.0.1" in net["postgres"]["command"]
    assert flags(net["mlflow"]["command"])["--host"] == "127.0.0.1"
    assert flags(net["dashboard"]["command"])["--host"] == "127.0.0.1"
    assert flags(net["ray-head"]["command"])["--dashboard-host"] == "127.0.0.1"
    agent_ports = []
    for name in ("ray-head", "ray-worker", "ray-worker-2"):
        assert flags(net[name]["command"])["--node-ip-address"] == "127.0.0.1", name
        agent_ports.append(flags(net[name]["command"])["--dashboard-agent-listen-port"])
    join = environment(net["seqarena-worker"])["RAY_JOIN_ARGS"]
    agent_ports.append(flags(join.split())["--dashboard-agent-listen-port"])
    assert "--node-ip-address=127.0.0.1" in join.split() and len(set(agent_ports)) == 4


def test_hostnet_commands_are_those_of_compose_but_for_addresses() -> None:
    """The same entrypoints, subcommands and options; only hosts, ports and host-networking options differ."""
    net = hostnet()
    address_flags = {"--host", "--port", "--allowed-hosts", "--mlflow-ui", "--address", "--node-ip-address",
                     "--dashboard-host", "--dashboard-port", "--ray-client-server-port",
                     "--dashboard-agent-listen-port", "--num-cpus", "--object-store-memory"}
    for name, service in net.items():
        if name in ("postgres", "s3", "s3-bucket"):
            continue
        original = services()[name.removesuffix("-2")]
        assert service.get("entrypoint") == original.get("entrypoint"), name
        ours, theirs = flags(service["command"]), flags(original["command"])
        assert [w for w in service["command"] if not w.startswith("-")][:1] == \
            [w for w in original["command"] if not w.startswith("-")][:1], name
        same = {k: v for k, v in theirs.items() if k not in address_flags}
        assert {k: ours.get(k) for k in same} == same, name
        assert set(ours) - set(theirs) <= address_flags, name
        env = environment(service)
        for key, value in environment(original).items():
            if key not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
                assert env.get(key) == value, f"{name}: {key}"
    assert flags(net["ray-head"]["command"])["--num-cpus"] == "0"
    assert environment(net["seqarena-worker"])["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:25000"


def hostnet_storage_users() -> set[str]:
    """The services of compose.hostnet.yaml that are Ray nodes or drivers, and the dashboard."""
    return {name for name, s in hostnet().items()
            if (s.get("entrypoint") or [])[:1] in (["ray"], ["join-ray"]) or name == "dashboard"}


def test_hostnet_keeps_tune_experiments_in_the_bucket_of_its_s3_server() -> None:
    """SEQARENA_STORAGE=s3://... with the stack's S3 server on every Ray node, the seqarena worker and the
    dashboard; the bucket made by the one-shot step before the worker starts; credentials only from the
    secrets file (deploy_check writes made-up ones), none in the compose file or an image."""
    net = hostnet()
    assert hostnet_storage_users() == {"ray-head", "ray-worker", "ray-worker-2", "seqarena-worker", "dashboard"}
    command = net["s3"]["command"]
    s3_port = command[command.index("-p") + 1]
    assert command[command.index("-H") + 1] == "127.0.0.1"
    expected = {"SEQARENA_STORAGE": "s3://seqarena/experiments", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
                "AWS_DEFAULT_REGION": "us-east-1"}
    for name in [*hostnet_storage_users(), "s3-bucket"]:
        env = environment(net[name])
        assert {key: env.get(key) for key in STORAGE_VARS} == expected, name
    for name, service in net.items():
        for key, value in environment(service).items():
            assert not SECRET_NAME.search(key), f"{name}: {key} is written in compose.hostnet.yaml"
            assert not URL_WITH_PASSWORD.search(value), f"{name}: {key} holds a password"
    moto_version = dockerfile_arg(S3_DOCKERFILE, "MOTO_VERSION")
    assert net["s3"]["image"] == net["s3-bucket"]["image"] == f"seqarena-moto:{moto_version}"
    assert ("ENTRYPOINT", '["moto_server"]') in dockerfile(S3_DOCKERFILE)
    assert f"seqarena-moto:$(sed -n 's/^ARG MOTO_VERSION=//p' infra/docker/{S3_DOCKERFILE.name})" in \
        (REPO / "scripts" / "deploy_images.sh").read_text()
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    (moto,) = [Requirement(item) for item in dev if item.startswith("moto")]
    assert moto.extras == {"server"} and moto.specifier.contains(moto_version), f"{moto} vs {moto_version}"
    assert net["s3"]["healthcheck"]["test"][0] == "CMD"
    assert net["s3-bucket"]["entrypoint"] == ["create-bucket"] and net["s3-bucket"]["restart"] == "no"
    assert net["s3-bucket"]["depends_on"] == {"s3": {"condition": "service_healthy"}}
    assert net["seqarena-worker"]["depends_on"]["s3-bucket"] == {"condition": "service_completed_successfully"}
    check = (REPO / "scripts" / "deploy_check.py").read_text()
    assert all(f'f"{key}={{self.' in check for key in S3_CREDENTIALS), "deploy_check writes the S3 credentials"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Docker Compose (docker-compose) is not installed")
@pytest.mark.parametrize("path", [COMPOSE_FILE, HOSTNET_FILE], ids=lambda p: p.name)
def test_docker_compose_accepts_the_compose_file(path: Path, tmp_path: Path) -> None:
    """Compose itself validates the file (`config -q`: schema, merge keys, interpolation, depends_on
    conditions), with the secrets template as the secrets file; nothing is started."""
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text((COMPOSE_DIR / "secrets.env.example").read_text())
    env = {"PATH": os.environ.get("PATH", ""), "SEQARENA_SECRETS_FILE": str(secrets_file)}
    done = subprocess.run(["docker-compose", "-f", str(path), "-p", "seqarena-test", "config", "-q"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------------ seqarena commands

def seqarena_subcommand(entrypoint: list[str] | None, command: list[str] | None) -> str | None:
    """The `seqarena` subcommand a container runs (our images' ENTRYPOINT is `seqarena`), or None."""
    entrypoint = ["seqarena"] if entrypoint is None else entrypoint
    if not entrypoint or entrypoint[-1] != "seqarena":
        return None
    words = [word for word in (command or []) if not word.startswith("-")]
    return words[0] if words else None


def used_subcommands() -> dict[str, str]:
    """Every `seqarena` subcommand used by compose, the k8s manifests and DEPLOY.md's code, with where."""
    used = {}
    for name, service in services().items():
        if service.get("image", "").startswith("seqarena-"):
            sub = seqarena_subcommand(service.get("entrypoint"), service.get("command"))
            if sub:
                used[f"compose {name}"] = sub
    for owner, container in k8s_containers():
        if owner.startswith("ray-"):
            continue  # KubeRay sets the command of Ray containers (ray start)
        sub = seqarena_subcommand(container.get("command"), container.get("args"))
        if sub:
            used[f"k8s {owner}"] = sub
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", DEPLOY_DOC.read_text(), flags=re.DOTALL))
    at_command = r"(?:^\s*|\$ |-- |&& |exec [\w-]+ )seqarena ([a-z][a-z-]*)"  # not `-n seqarena port-forward`
    for i, sub in enumerate(re.findall(at_command, code, flags=re.MULTILINE)):
        used[f"DEPLOY.md #{i}"] = sub
    for i, sub in enumerate(re.findall(r"run --rm cli ([a-z][a-z-]*)", code)):
        used[f"DEPLOY.md cli #{i}"] = sub
    return used


def test_every_seqarena_command_used_exists_or_is_planned() -> None:
    import typer.main

    from seqarena.cli import app

    real = set(typer.main.get_command(app).commands)
    used = used_subcommands()
    assert {"worker", "dashboard", "submit"} <= set(used.values())
    unknown = {where: sub for where, sub in used.items() if sub not in real | PLANNED}
    assert not unknown, f"no such seqarena command: {unknown}"
    landed = PLANNED & real
    if landed:
        warnings.warn(f"remove {sorted(landed)} from PLANNED in tests/unit/test_infra.py: they landed", stacklevel=1)


def test_services_run_the_documented_commands() -> None:
    assert services()["seqarena-worker"]["entrypoint"] == ["join-ray", "seqarena"]
    assert services()["seqarena-worker"]["command"] == ["worker"]
    assert services()["dashboard"]["command"] == ["dashboard", "--host", "0.0.0.0", "--port", "8501",
                                                  "--mlflow-ui", "http://127.0.0.1:5000"]
    (worker,) = [c for owner, c in k8s_containers() if owner.startswith("seqarena-worker/")]
    assert worker["command"] == ["join-ray", "seqarena"] and worker["args"] == ["worker"]
    (dashboard,) = [c for owner, c in k8s_containers() if owner.startswith("dashboard/")]
    assert dashboard["args"] == ["dashboard", "--host", "0.0.0.0", "--port", "8501", "--mlflow-ui",
                                 "http://127.0.0.1:5000"]


# ------------------------------------------------------------------------------------------- kubernetes

def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    listed = kustomization()["resources"]
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name not in ("kustomization.yaml",
                                                                             "secrets.example.yaml"))
    assert sorted(listed) == present
    assert not k8s_kind("Secret"), "no Secret is applied from this directory"
    images = {c["image"].split(":")[0] for _, c in k8s_containers()}
    assert images == {entry["name"] for entry in kustomization()["images"]} == {"seqarena-cpu", "seqarena-cuda"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    objects = [(name, doc) for name, doc in k8s_objects() if doc["kind"] != "RayCluster"]
    objects += [("secrets.example.yaml", doc) for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())]
    assert {doc["kind"] for _, doc in objects} >= {"Namespace", "PersistentVolumeClaim", "Deployment", "Service"}
    for name, doc in objects:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']} at {where}: {error.message}")


def test_the_kubernetes_validator_rejects_a_broken_deployment() -> None:
    (deployment, *_) = k8s_kind("Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # a typo of `resources`
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def raycluster_validator(version: str) -> jsonschema.Draft202012Validator:
    """The reduced RayCluster schema, its Kubernetes types resolved in kubernetes-validate's schemas."""
    schema = json.loads(RAYCLUSTER_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    folder = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}.0-local-strict"
    definitions = json.loads((folder / "_definitions.json").read_text())
    registry = Registry().with_resources([(definitions["$id"], Resource.from_contents(definitions)),
                                          (schema["$id"], Resource.from_contents(schema))])
    return jsonschema.Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_raycluster_validates_against_the_reduced_rayclusters_schema(version: str) -> None:
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in raycluster_validator(version).iter_errors(raycluster())]
    assert not errors, errors


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "workerGroupSpec"), []),                                          # not workerGroupSpecs
        (("spec", "headGroupSpec", "rayStartParams", "num-cpus"), 0),                # not a string
        (("spec", "workerGroupSpecs", 0, "template", "spec", "containers", 0, "limits"), {}),  # a PodSpec typo
        (("spec", "autoscalerOptions", "upscalingMode"), "Fast"),
    ],
)
def test_the_raycluster_schema_rejects_a_broken_cluster(path: tuple[Any, ...], value: Any) -> None:
    broken = copy.deepcopy(raycluster())
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(raycluster_validator(K8S_VERSIONS[-1]).iter_errors(broken))


def test_raycluster_autoscales_a_cpu_and_a_gpu_group_behind_a_head() -> None:
    cluster = raycluster()
    spec = cluster["spec"]
    assert cluster["apiVersion"] == "ray.io/v1" and spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {group["groupName"]: group for group in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for group in groups.values():
        assert group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"], group["groupName"]
        assert group["minReplicas"] < group["maxReplicas"], f"{group['groupName']} cannot scale"
    gpu_container = groups["gpu"]["template"]["spec"]["containers"][0]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu_container["image"].startswith("seqarena-cuda")
    others = [c for owner, c in k8s_containers() if owner != "ray-gpu/ray-worker"]
    assert all("nvidia.com/gpu" not in c["resources"]["limits"] for c in others)


def env_entries() -> Iterator[tuple[str, dict[str, Any]]]:
    for owner, container in k8s_containers():
        for entry in container.get("env", []):
            yield owner, entry
    for entry in raycluster()["spec"]["autoscalerOptions"]["env"]:
        yield "autoscaler", entry


def test_k8s_secrets_are_referenced_by_name_never_written() -> None:
    template = next(doc for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if doc)
    keys = set(template["stringData"])
    assert all("change-me" in value for value in template["stringData"].values())
    for owner, entry in env_entries():
        assert not URL_WITH_PASSWORD.search(str(entry.get("value", ""))), f"{owner}: {entry['name']}"
        if SECRET_NAME.search(entry["name"]):
            assert "value" not in entry, f"{owner}: {entry['name']} is written inline"
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == template["metadata"]["name"] and ref["key"] in keys, f"{owner}: {ref}"
    for _, doc in k8s_objects():
        assert "change-me" not in json.dumps(doc)


def test_k8s_one_ray_token_reaches_every_ray_node_and_client() -> None:
    reached = set()
    autoscaler = {"env": raycluster()["spec"]["autoscalerOptions"]["env"]}
    for owner, container in [*k8s_containers(), ("autoscaler", autoscaler)]:
        env = {entry["name"]: entry for entry in container.get("env", [])}
        if not (owner.startswith("ray-") or owner == "autoscaler" or "RAY_ADDRESS" in env):
            continue
        assert env["RAY_AUTH_MODE"]["value"] == "token", owner
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == RAY_TOKEN_SECRET, owner
        reached.add(owner.split("/")[0])
    assert reached >= {"ray-head", "ray-cpu", "ray-gpu", "autoscaler", "seqarena-worker"}
    worker_env = {e["name"]: e.get("value") for o, e in env_entries() if o.startswith("seqarena-worker/")}
    assert worker_env["RAY_ADDRESS"] == f"{raycluster()['metadata']['name']}-head-svc:6379"  # KubeRay's head Service


def test_k8s_every_container_requests_and_limits_cpu_and_memory() -> None:
    resources = {owner: c.get("resources", {}) for owner, c in k8s_containers()}
    resources["autoscaler"] = raycluster()["spec"]["autoscalerOptions"]["resources"]
    for owner, given in resources.items():
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(given.get(kind, {})), f"{owner}: no {kind} for cpu and memory"


def test_k8s_services_are_cluster_internal_and_the_documented_ones_exist() -> None:
    ports = {}
    for service in k8s_kind("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
        ports[service["metadata"]["name"]] = {port["port"] for port in service["spec"]["ports"]}
    assert raycluster()["spec"]["headGroupSpec"]["serviceType"] == "ClusterIP"
    ports[f"{raycluster()['metadata']['name']}-head-svc"] = {8265}  # KubeRay's head Service: the Ray dashboard
    forwarded = re.findall(r"port-forward svc/([a-z-]+) (\d+):(\d+)", DEPLOY_DOC.read_text())
    assert {"mlflow", "dashboard"} <= {name for name, _, _ in forwarded}
    for name, _, remote in forwarded:
        assert int(remote) in ports[name], f"DEPLOY.md forwards {name}:{remote}, which does not exist"


def test_k8s_shared_storage_is_one_read_write_many_claim_mounted_at_seqarena_home() -> None:
    (claim,) = k8s_kind("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for owner, pod in pod_specs():
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", [])
                  if "persistentVolumeClaim" in v}
        assert list(claims.values()) == [claim["metadata"]["name"]], owner
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert claims.get(mounts.get(SHARED_HOME)), f"{owner}: the claim is not at {SHARED_HOME}"
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert env.get("SEQARENA_HOME", SHARED_HOME) == SHARED_HOME, owner


def test_k8s_mlflow_server_stores_in_postgres_and_proxies_artifacts() -> None:
    (mlflow,) = [c for owner, c in k8s_containers() if owner.startswith("mlflow/")]
    assert mlflow["command"] == ["mlflow"]
    check_mlflow_args(mlflow["args"])
    env = {entry["name"]: entry for entry in mlflow["env"]}
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["key"] == "mlflow-backend-store-uri"


def test_k8s_runs_the_images_and_commands_that_the_compose_check_ran() -> None:
    """scripts/deploy_check.sh ran compose.hostnet.yaml's services; KubeRay must run the same images with the
    same entrypoints, subcommands and options (only listening addresses and ports differ, and where MLflow's
    artifacts volume is mounted: on Kubernetes a folder of the one shared claim)."""
    net = hostnet()
    address_flags = {"--host", "--port", "--allowed-hosts", "--mlflow-ui", "--artifacts-destination"}
    containers = {owner.split("/")[0]: c for owner, c in k8s_containers()}
    for k8s_owner, service in (("mlflow", "mlflow"), ("seqarena-worker", "seqarena-worker"),
                               ("dashboard", "dashboard")):
        container, proven = containers[k8s_owner], net[service]
        assert container["image"] == proven["image"], k8s_owner
        assert container.get("command", proven.get("entrypoint")) == proven.get("entrypoint"), k8s_owner
        args = container["args"]
        words = [w for w in proven["command"] if not w.startswith("-")]
        assert [w for w in args if not w.startswith("-")][:1] == words[:1], k8s_owner
        ours, theirs = flags(args), flags(proven["command"])
        assert set(ours) == set(theirs), k8s_owner
        assert {k: v for k, v in ours.items() if k not in address_flags} == \
            {k: v for k, v in theirs.items() if k not in address_flags}, k8s_owner
    for group in ("ray-head", "ray-cpu"):
        assert containers[group]["image"] == net["ray-head"]["image"], group
    head = flags(net["ray-head"]["command"])
    assert raycluster()["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == head["--num-cpus"] == "0"
    assert "RAY_JOIN_ARGS" not in {e["name"] for e in containers["seqarena-worker"].get("env", [])}


def test_k8s_storage_reaches_every_ray_node_driver_and_dashboard_as_in_compose() -> None:
    """The containers that get the storage variables in compose.hostnet.yaml get them on Kubernetes too, from
    one optional Secret (`envFrom`; the template names exactly those variables and the credentials)."""
    reached = set()
    for owner, container in k8s_containers():
        refs = [item["secretRef"] for item in container.get("envFrom", [])]
        if refs:
            assert refs == [{"name": "seqarena-storage", "optional": True}], owner
            reached.add(owner.split("/")[0])
        names = {entry["name"] for entry in container.get("env", [])}
        assert not names & (STORAGE_VARS | S3_CREDENTIALS), f"{owner}: storage variables written inline"
    assert reached == {"ray-head", "ray-cpu", "ray-gpu", "seqarena-worker", "dashboard"}
    assert hostnet_storage_users() == {"ray-head", "ray-worker", "ray-worker-2", "seqarena-worker", "dashboard"}
    templates = [doc for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if doc]
    (storage,) = [doc for doc in templates if doc["metadata"]["name"] == "seqarena-storage"]
    assert set(storage["stringData"]) == STORAGE_VARS | S3_CREDENTIALS
    assert all("change-me" in value for value in storage["stringData"].values())
    example = (COMPOSE_DIR / "secrets.env.example").read_text()
    for name in STORAGE_VARS | S3_CREDENTIALS:  # compose.yaml's users put them in secrets.env
        assert re.search(rf"^# {name}=", example, flags=re.MULTILINE), name


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_kustomize_builds_the_manifests_into_one_namespace() -> None:
    done = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    built = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert len(built) == len(k8s_objects())
    assert all(doc["metadata"].get("namespace") == "seqarena" for doc in built if doc["kind"] != "Namespace")


# ------------------------------------------------------------------------------------------------- docs

def test_deploy_doc_names_only_files_that_exist_and_says_what_was_not_run() -> None:
    text = DEPLOY_DOC.read_text()
    for path in set(re.findall(r"\b((?:infra|docs|examples|tests)/[\w./-]*\w)", text)):
        if path != "infra/compose/secrets.env":  # created by the user from secrets.env.example
            assert (REPO / path).exists(), f"DEPLOY.md names {path}, which does not exist"
    for needed in ("docker build -f infra/docker/Dockerfile.cpu", "docker compose -f infra/compose/compose.yaml up",
                   "kubectl apply -k infra/k8s", "helm install", "port-forward", "not run"):
        assert needed in text, f"DEPLOY.md does not say `{needed}`"


def test_the_shipped_dashboards_require_a_token() -> None:
    """Both listen on 0.0.0.0 (`seqarena dashboard` then refuses to start without a token) and get one."""
    from seqarena.dashboard.serve import LOOPBACK

    compose = services()["dashboard"]
    host = compose["command"][compose["command"].index("--host") + 1]
    assert host not in LOOPBACK and "secrets.env" in env_files(compose)
    assert "SEQARENA_DASHBOARD_TOKEN" in secrets_example()
    (dashboard,) = [c for owner, c in k8s_containers() if owner.startswith("dashboard/")]
    assert dashboard["args"][dashboard["args"].index("--host") + 1] not in LOOPBACK
    (token,) = [entry for entry in dashboard["env"] if entry["name"] == "SEQARENA_DASHBOARD_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "seqarena-secrets", "key": "dashboard-token"}
