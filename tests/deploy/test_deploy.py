"""The deployment artefacts: deploy/ecs-taskdef.json, deploy/sidecar-container.json (and the jq
merge the README shows), and the Terraform modules deploy/terraform and
deploy/terraform/modules/container with the Fargate and EFS examples.

The task definition is checked against botocore's own ECS model, registered in moto, and held to
what the sidecar needs (health check, restart policy, port, environment, stop timeout, shared
volume, user).
The same semantic checks run on the task definition the Terraform module renders in the plan of
deploy/terraform/examples/fargate, so the hand-written JSON and the module cannot drift apart.

Terraform runs offline: the AWS provider comes from a filesystem mirror (S3SYNC_TF_PLUGIN_DIR,
/opt/tf-plugins or ~/.terraform.d/plugins) through a CLI config file written here, on a copy of
the module in a temporary folder, so no .terraform/ or lock file lands in the repository. Without
terraform or a mirror those tests are skipped, saying why (fmt needs terraform only). The module
allows AWS provider 5 and 6: the example is planned with each major version the mirror holds, and
a version missing from the mirror is a skipped test that says so.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import botocore.validate
import pytest
import yaml
from moto import mock_aws
from support import ROOT

from sidecar.settings.config import VARIABLES, load_settings

DEPLOY = ROOT / "deploy"
TASKDEF_FILE = DEPLOY / "ecs-taskdef.json"
MODULE = DEPLOY / "terraform"
EXAMPLE = Path("examples") / "fargate"
EFS_EXAMPLE = Path("examples") / "efs"
CONTAINER_MODULE = Path("modules") / "container"
CHECKOV_CONFIG = MODULE / ".checkov.yaml"
ECS_MODULE_STUBS = ROOT / "tests" / "deploy" / "ecs_module_stub"
ECS_MODULE_SOURCE = re.compile(
    r'source  = "terraform-aws-modules/ecs/aws//modules/service"\n  version = "([^"]+)"'
)
SIDECAR_FILE = DEPLOY / "sidecar-container.json"
TASK_POLICY_FILE = DEPLOY / "task-role-policy.json"
TRUST_POLICY_FILE = DEPLOY / "task-role-trust-policy.json"

SIDECAR = "s3sync-sidecar"
HEALTH_CHECK = {
    "command": ["CMD", "s3sync-sidecar", "healthcheck"],
    "interval": 10,
    "timeout": 5,
    "retries": 10,
    "startPeriod": 300,
}
# Exit 1 (stopped syncing) restarts the container in place, keeping the task and its volume;
# 0 (a clean stop) does not. 60 s is the shortest attempt period ECS allows.
RESTART_POLICY = {"enabled": True, "ignoredExitCodes": [0], "restartAttemptPeriod": 60}
FARGATE_MAX_STOP_TIMEOUT = 120
KNOWN_VARIABLES = {variable.name for variable in VARIABLES}

# Valid Fargate task sizes: CPU units -> memory sizes in MiB (AWS's table for Linux tasks).
FARGATE_MEMORY: dict[int, set[int]] = {
    256: {512, 1024, 2048},
    512: set(range(1024, 4097, 1024)),
    1024: set(range(2048, 8193, 1024)),
    2048: set(range(4096, 16385, 1024)),
    4096: set(range(8192, 30721, 1024)),
    8192: set(range(16384, 61441, 4096)),
    16384: set(range(32768, 122881, 8192)),
}

TF_TIMEOUT = 240  # seconds, for any one terraform or checkov process
TF_PROVIDER_DIR = "registry.terraform.io/hashicorp/aws"
TF_PROVIDER_GLOB = f"{TF_PROVIDER_DIR}/[56].*/*/terraform-provider-aws*"
TF_PROVIDER_MAJORS = (5, 6)  # what versions.tf allows: >= 5.0, < 7.0


# -- the task definitions under test -------------------------------------------------------------


def load_taskdef() -> dict[str, Any]:
    return dict(json.loads(TASKDEF_FILE.read_text()))


def containers(taskdef: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in taskdef["containerDefinitions"]}


def sidecar_of(taskdef: dict[str, Any]) -> dict[str, Any]:
    return containers(taskdef)[SIDECAR]


def apps_of(taskdef: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in taskdef["containerDefinitions"] if c["name"] != SIDECAR]


def environment(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def volume_from_plan(volume: dict[str, Any]) -> dict[str, Any]:
    """A task definition volume from the planned block; IDs known only after apply (the EFS
    example's file system and access point) are stood in for."""
    converted: dict[str, Any] = {"name": volume["name"]}
    for efs in volume.get("efs_volume_configuration") or []:
        (authorization,) = efs["authorization_config"]
        converted["efsVolumeConfiguration"] = {
            "fileSystemId": efs.get("file_system_id", "fs-known-after-apply"),
            "transitEncryption": efs["transit_encryption"],
            "authorizationConfig": {
                "accessPointId": authorization.get("access_point_id", "fsap-known-after-apply"),
                "iam": authorization["iam"],
            },
        }
    return converted


def taskdef_from_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """RegisterTaskDefinition parameters from the module's planned aws_ecs_task_definition
    (the role ARNs are unknown until apply, and left out)."""
    values = module_resource(plan, "aws_ecs_task_definition.this")
    taskdef: dict[str, Any] = {
        "family": values["family"],
        "networkMode": values["network_mode"],
        "requiresCompatibilities": list(values["requires_compatibilities"]),
        "cpu": values["cpu"],
        "memory": values["memory"],
        "containerDefinitions": json.loads(values["container_definitions"]),
        "volumes": [volume_from_plan(volume) for volume in values["volume"]],
    }
    for platform in values.get("runtime_platform") or []:
        taskdef["runtimePlatform"] = {
            "operatingSystemFamily": platform["operating_system_family"],
            "cpuArchitecture": platform["cpu_architecture"],
        }
    for storage in values.get("ephemeral_storage") or []:
        taskdef["ephemeralStorage"] = {"sizeInGiB": storage["size_in_gib"]}
    return taskdef


def readme_jq_command() -> list[str]:
    """The one-line jq merge deploy/README.md shows (run in deploy/), as arguments."""
    (line,) = [
        line
        for line in (DEPLOY / "README.md").read_text().splitlines()
        if line.startswith("jq --slurpfile ")
    ]
    command, _, output = line.partition(" > ")
    assert output.strip(), "the README's command writes the merged task definition to a file"
    return shlex.split(command)


def app_only_taskdef() -> dict[str, Any]:
    """deploy/ecs-taskdef.json as a user's task definition before the sidecar is added: no
    sidecar, no shared volume, apps without its mount point and dependsOn."""
    taskdef = load_taskdef()
    taskdef.pop("volumes")
    taskdef["containerDefinitions"] = [
        {k: v for k, v in c.items() if k not in ("mountPoints", "dependsOn")}
        for c in apps_of(taskdef)
    ]
    return taskdef


def run_readme_jq(
    tmp_path: Path, taskdef: dict[str, Any], apps: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The README's jq line on `taskdef` (as my-taskdef.json), naming `apps` as the containers
    that use the folder (None: the README's own choice)."""
    jq = shutil.which("jq")
    if jq is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "jq is not installed (apt-get install jq): under CI=true nothing is skipped"
            )
        pytest.skip("jq is not installed (apt-get install jq)")
    mine = tmp_path / "my-taskdef.json"
    mine.write_text(json.dumps(taskdef))
    args = readme_jq_command()
    assert args[0] == "jq" and "sidecar-container.json" in args
    args = [str(SIDECAR_FILE) if a == "sidecar-container.json" else a for a in args]
    args[-1] = str(mine)
    if apps is not None:
        args[args.index("--arg") + 2] = apps
    return subprocess.run([jq, *args[1:]], capture_output=True, text=True, timeout=30, check=False)


def jq_merged_taskdef(
    tmp_path: Path, taskdef: dict[str, Any] | None = None, apps: str | None = None
) -> dict[str, Any]:
    result = run_readme_jq(tmp_path, app_only_taskdef() if taskdef is None else taskdef, apps)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(params=["ecs-taskdef.json", "jq-merge", "terraform-plan", "terraform-plan-efs"])
def taskdef(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """deploy/ecs-taskdef.json; the README's jq merge of sidecar-container.json into an app's
    task definition; the task definitions the module renders for the Fargate and EFS examples."""
    if request.param == "ecs-taskdef.json":
        return load_taskdef()
    if request.param == "jq-merge":
        return jq_merged_taskdef(tmp_path)
    if request.param == "terraform-plan-efs":
        return taskdef_from_plan(request.getfixturevalue("efs_plan"))
    return taskdef_from_plan(request.getfixturevalue("example_plan"))


# -- ECS API shape -------------------------------------------------------------------------------


def register_shape() -> Any:
    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


def enum_errors(shape: Any, value: Any, path: str) -> list[str]:
    """Every string whose shape has an enum must be one of its values (ParamValidator does not
    check enums)."""
    errors: list[str] = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in value.items():
            if name in shape.members:
                errors += enum_errors(shape.members[name], member, f"{path}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            errors += enum_errors(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            errors += enum_errors(shape.key, key, f"{path} key {key!r}")
            errors += enum_errors(shape.value, item, f"{path}[{key!r}]")
    elif shape.type_name == "string" and getattr(shape, "enum", None) and value not in shape.enum:
        errors.append(f"{path}: {value!r} is not one of {sorted(shape.enum)}")
    return errors


def test_taskdef_matches_the_ecs_api_shape(taskdef: dict[str, Any]) -> None:
    report = botocore.validate.ParamValidator().validate(taskdef, register_shape())
    assert not report.has_errors(), report.generate_report()


def test_taskdef_enum_values_are_valid(taskdef: dict[str, Any]) -> None:
    shape = register_shape()
    # The walk reaches the enums this file uses (a sanity check of the walk itself).
    assert "FARGATE" in shape.members["requiresCompatibilities"].member.enum
    assert enum_errors(shape, taskdef, "RegisterTaskDefinition") == []


def test_taskdef_registers_in_moto() -> None:
    taskdef = load_taskdef()
    with mock_aws():
        client = botocore.session.get_session().create_client(
            "ecs",
            region_name="eu-west-2",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        registered = client.register_task_definition(**taskdef)["taskDefinition"]
        described = client.describe_task_definition(taskDefinition=registered["taskDefinitionArn"])
    assert registered["family"] == taskdef["family"]
    assert registered["revision"] == 1
    round_trip = containers(described["taskDefinition"])[SIDECAR]
    sidecar = sidecar_of(taskdef)
    assert round_trip["healthCheck"] == sidecar["healthCheck"] == HEALTH_CHECK
    assert round_trip["stopTimeout"] == sidecar["stopTimeout"]
    assert round_trip["restartPolicy"] == sidecar["restartPolicy"] == RESTART_POLICY
    assert environment(round_trip) == environment(sidecar)
    assert {v["name"] for v in described["taskDefinition"]["volumes"]} == {"shared-data"}


# -- what the sidecar needs ----------------------------------------------------------------------


def test_depends_on_names_containers_of_the_task(taskdef: dict[str, Any]) -> None:
    names = set(containers(taskdef))
    assert len(names) == len(taskdef["containerDefinitions"]), "container names are unique"
    for container in taskdef["containerDefinitions"]:
        for dependency in container.get("dependsOn", []):
            assert dependency["containerName"] in names, (container["name"], dependency)
            assert dependency["containerName"] != container["name"]


def test_mount_points_name_declared_volumes(taskdef: dict[str, Any]) -> None:
    volumes = {volume["name"] for volume in taskdef.get("volumes", [])}
    for container in taskdef["containerDefinitions"]:
        for mount in container.get("mountPoints", []):
            assert mount["sourceVolume"] in volumes, (container["name"], mount)


def test_shared_volume_is_mounted_in_every_container(taskdef: dict[str, Any]) -> None:
    sidecar = sidecar_of(taskdef)
    synced = environment(sidecar)["SYNC_DIR"]
    (volume,) = [m["sourceVolume"] for m in sidecar["mountPoints"] if m["containerPath"] == synced]
    for container in taskdef["containerDefinitions"]:
        mounts = [m for m in container.get("mountPoints", []) if m["sourceVolume"] == volume]
        assert mounts, f"{container['name']} does not mount {volume}"
        assert not any(m.get("readOnly") for m in mounts), container["name"]


def test_fargate_cpu_memory_pair_is_valid(taskdef: dict[str, Any]) -> None:
    assert taskdef["requiresCompatibilities"] == ["FARGATE"]
    assert taskdef["networkMode"] == "awsvpc"
    cpu, memory = int(taskdef["cpu"]), int(taskdef["memory"])
    assert cpu in FARGATE_MEMORY, f"{cpu} is not a Fargate CPU size"
    assert memory in FARGATE_MEMORY[cpu], f"{cpu} CPU / {memory} MiB is not a Fargate size"
    storage = taskdef.get("ephemeralStorage", {}).get("sizeInGiB")
    assert storage is None or 21 <= storage <= 200


def test_at_least_one_container_is_essential(taskdef: dict[str, Any]) -> None:
    assert any(c.get("essential", True) for c in taskdef["containerDefinitions"])
    assert sidecar_of(taskdef)["essential"] is True


def test_sidecar_health_check(taskdef: dict[str, Any]) -> None:
    assert sidecar_of(taskdef)["healthCheck"] == HEALTH_CHECK


def test_sidecar_is_restarted_in_place_when_it_stops_syncing(taskdef: dict[str, Any]) -> None:
    """An essential container that exits stops the whole task, and a volume on the task's
    ephemeral storage goes with it: the sidecar's exit 1 must restart it in place instead."""
    policy = sidecar_of(taskdef)["restartPolicy"]
    assert policy == RESTART_POLICY
    assert 1 not in policy["ignoredExitCodes"]
    assert 60 <= policy["restartAttemptPeriod"] <= 1800  # ECS's bounds


def test_sidecar_port_env_and_prometheus_labels_agree(taskdef: dict[str, Any]) -> None:
    sidecar = sidecar_of(taskdef)
    (mapping,) = sidecar["portMappings"]
    port = int(environment(sidecar)["SYNC_HTTP_PORT"])
    assert mapping["containerPort"] == port
    assert mapping.get("hostPort", port) == port  # awsvpc: the same or left out
    assert mapping.get("protocol", "tcp") == "tcp"
    labels = sidecar["dockerLabels"]
    assert labels["ECS_PROMETHEUS_EXPORTER_PORT"] == str(port)
    assert labels["ECS_PROMETHEUS_METRICS_PATH"] == "/metrics"
    assert labels["ECS_PROMETHEUS_JOB_NAME"] == SIDECAR


def test_sync_variables_are_known_to_the_program(taskdef: dict[str, Any]) -> None:
    for container in taskdef["containerDefinitions"]:
        named = {name for name in environment(container) if name.startswith("SYNC_")}
        assert named <= KNOWN_VARIABLES, f"{container['name']}: unknown {named - KNOWN_VARIABLES}"


def test_sidecar_environment_is_a_valid_configuration(taskdef: dict[str, Any]) -> None:
    env = environment(sidecar_of(taskdef))
    required = {variable.name for variable in VARIABLES if variable.required}
    assert required <= set(env)
    assert env["SYNC_LOG_FORMAT"] == "json"
    # As on ECS: credentials from the container endpoint, which ECS sets for the task role;
    # placeholders replaced the way a user would (REPLACE_WITH_BUCKET_NAME is no bucket name).
    filled = {
        name: value.lower().replace("_", "-") if value.startswith("REPLACE_WITH_") else value
        for name, value in env.items()
    }
    settings = load_settings(
        {**filled, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}
    )
    assert settings.log_format == "json"
    assert settings.http_port == int(env["SYNC_HTTP_PORT"])


def test_app_waits_for_the_sidecar_to_be_healthy(taskdef: dict[str, Any]) -> None:
    apps = apps_of(taskdef)
    assert apps
    for app in apps:
        assert {"containerName": SIDECAR, "condition": "HEALTHY"} in app.get("dependsOn", [])


def test_stop_timeout_leaves_time_for_the_final_flush(taskdef: dict[str, Any]) -> None:
    sidecar = sidecar_of(taskdef)
    shutdown = float(environment(sidecar)["SYNC_SHUTDOWN_TIMEOUT"])
    assert sidecar["stopTimeout"] == FARGATE_MAX_STOP_TIMEOUT
    assert sidecar["stopTimeout"] > shutdown
    assert shutdown == 100


def test_sidecar_root_filesystem_is_read_only(taskdef: dict[str, Any]) -> None:
    assert sidecar_of(taskdef)["readonlyRootFilesystem"] is True


def test_containers_run_as_the_same_non_root_user(taskdef: dict[str, Any]) -> None:
    users = {c["name"]: c.get("user") for c in taskdef["containerDefinitions"]}
    for name, user in users.items():
        assert user, f"{name} runs as the image's user: set the same UID:GID as the sidecar"
        uid = user.split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{name} runs as root ({user})"
    assert set(users.values()) == {"1000:1000"}


def test_placeholders_are_documented() -> None:
    text = TASKDEF_FILE.read_text()
    placeholders = set(re.findall(r"REPLACE_WITH_[A-Z_]+", text))
    assert placeholders
    assert "<" not in text, "one placeholder style only: REPLACE_WITH_..."
    readme = (DEPLOY / "README.md").read_text()
    for token in sorted(placeholders | {"123456789012", "eu-west-2"}):
        assert token in readme, f"{token} is not explained in deploy/README.md"


# -- Terraform -----------------------------------------------------------------------------------


def plugin_dir_candidates() -> list[Path]:
    candidates = []
    if os.environ.get("S3SYNC_TF_PLUGIN_DIR"):
        candidates.append(Path(os.environ["S3SYNC_TF_PLUGIN_DIR"]))
    return [*candidates, Path("/opt/tf-plugins"), Path.home() / ".terraform.d" / "plugins"]


def find_plugin_dir() -> Path | None:
    """A filesystem mirror holding hashicorp/aws 5.x or 6.x, if any."""
    for candidate in plugin_dir_candidates():
        if any(candidate.glob(TF_PROVIDER_GLOB)):
            return candidate
    return None


@dataclass
class Terraform:
    binary: str
    env: dict[str, str]
    base: Path  # a temporary folder
    mirror: Path | None

    def command(self, *args: str) -> list[str]:
        return [self.binary, *args, "-no-color"]

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args),
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TF_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, (
            f"terraform {' '.join(args)} in {cwd} exited {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}"
        )
        return result

    def copy_module(self, name: str) -> Path:
        """A copy of deploy/terraform to run terraform in: nothing lands in the repository."""
        self.need_mirror()
        work = self.base / name
        shutil.copytree(
            MODULE,
            work,
            ignore=shutil.ignore_patterns(
                ".terraform", ".terraform.lock.hcl", "*.tfstate*", "tfplan"
            ),
        )
        return work

    def need_mirror(self) -> None:
        if self.mirror is None:
            pytest.skip(
                "no hashicorp/aws 5.x or 6.x provider mirror found (looked in "
                f"{', '.join(map(str, plugin_dir_candidates()))}; set S3SYNC_TF_PLUGIN_DIR): "
                "terraform cannot download providers here"
            )


class BackgroundModuleTests:
    """`terraform init` and `terraform test` of the module on its own copy, in a thread, so that
    its half minute overlaps the example's plan and checkov."""

    def __init__(self, terraform: Terraform, directory: Path) -> None:
        self.terraform = terraform
        self.directory = directory
        self.process: subprocess.Popen[str] | None = None
        self.output = ""
        self.error: BaseException | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="terraform-test", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.terraform.run("init", "-backend=false", "-input=false", cwd=self.directory)
            if self.stopping:
                return
            self.process = subprocess.Popen(
                self.terraform.command("test"),
                cwd=self.directory,
                env=self.terraform.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            self.output, _ = self.process.communicate(timeout=TF_TIMEOUT)
        except BaseException as error:  # re-raised in the test
            self.error = error
            self.stop()

    def result(self) -> tuple[int, str]:
        self.thread.join(timeout=2 * TF_TIMEOUT + 30)
        assert not self.thread.is_alive(), "terraform test did not finish"
        if self.error is not None:
            raise self.error
        assert self.process is not None
        return self.process.returncode, self.output

    def stop(self) -> None:
        self.stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not installed (not on PATH)")
    base = tmp_path_factory.mktemp("terraform")
    mirror = find_plugin_dir()
    config = base / "cli.tfrc"
    if mirror is None:
        config.write_text("")
    else:
        config.write_text(
            "provider_installation {\n"
            "  filesystem_mirror {\n"
            f"    path    = {json.dumps(str(mirror))}\n"
            '    include = ["registry.terraform.io/hashicorp/aws"]\n'
            "  }\n"
            "}\n"
        )
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    for inherited in ("TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR", "TF_WORKSPACE"):
        env.pop(inherited, None)
    return Terraform(binary, env, base, mirror)


@pytest.fixture(scope="session")
def module_tests(terraform: Terraform) -> Iterator[BackgroundModuleTests]:
    background = BackgroundModuleTests(terraform, terraform.copy_module("module-tests"))
    yield background
    background.stop()


@pytest.fixture(scope="session")
def module_dir(terraform: Terraform) -> Path:
    directory = terraform.copy_module("module")
    terraform.run("init", "-backend=false", "-input=false", cwd=directory)
    return directory


@pytest.fixture(scope="session")
def example_dir(terraform: Terraform, module_tests: BackgroundModuleTests) -> Path:
    """The example, initialised (the module's own tests start in the background meanwhile)."""
    directory = terraform.copy_module("example") / EXAMPLE
    terraform.run("init", "-backend=false", "-input=false", cwd=directory)
    return directory


@pytest.fixture(scope="session")
def example_plan_file(terraform: Terraform, example_dir: Path) -> Path:
    """`terraform plan -out` of the example (mock credentials, nothing asked of AWS), as JSON."""
    terraform.run("plan", "-input=false", "-lock=false", "-out=tfplan", cwd=example_dir)
    shown = terraform.run("show", "-json", "tfplan", cwd=example_dir)
    path = example_dir / "plan.json"
    path.write_text(shown.stdout)
    return path


@pytest.fixture(scope="session")
def example_plan(example_plan_file: Path) -> dict[str, Any]:
    return dict(json.loads(example_plan_file.read_text()))


@pytest.fixture(scope="session")
def efs_dir(terraform: Terraform) -> Path:
    directory = terraform.copy_module("efs-example") / EFS_EXAMPLE
    terraform.run("init", "-backend=false", "-input=false", cwd=directory)
    return directory


@pytest.fixture(scope="session")
def efs_plan_file(terraform: Terraform, efs_dir: Path) -> Path:
    terraform.run("plan", "-input=false", "-lock=false", "-out=tfplan", cwd=efs_dir)
    path = efs_dir / "plan.json"
    path.write_text(terraform.run("show", "-json", "tfplan", cwd=efs_dir).stdout)
    return path


@pytest.fixture(scope="session")
def efs_plan(efs_plan_file: Path) -> dict[str, Any]:
    return dict(json.loads(efs_plan_file.read_text()))


def root_resource(plan: dict[str, Any], address: str) -> dict[str, Any]:
    for resource in plan["planned_values"]["root_module"].get("resources", []):
        if resource["address"] == address:
            return dict(resource.get("values", {}))
    raise AssertionError(f"{address} is not in the plan")


def module_resource(plan: dict[str, Any], address: str) -> dict[str, Any]:
    for module in plan["planned_values"]["root_module"].get("child_modules", []):
        for resource in module.get("resources", []):
            if resource["address"] == f"module.s3sync.{address}":
                return dict(resource.get("values", {}))  # no values: all unknown until apply
    raise AssertionError(f"module.s3sync.{address} is not in the plan")


def test_terraform_fmt(terraform: Terraform) -> None:
    result = subprocess.run(
        [terraform.binary, "fmt", "-check", "-recursive", "-diff", "-no-color", str(MODULE)],
        env=terraform.env,
        capture_output=True,
        text=True,
        timeout=TF_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"run `terraform fmt -recursive deploy/terraform`:\n{result.stdout}"
    )


def validate_without_warnings(terraform: Terraform, directory: Path) -> None:
    """Valid, and without a single warning: nothing deprecated in the provider is used."""
    result = json.loads(terraform.run("validate", "-json", cwd=directory).stdout)
    assert result["valid"], result
    assert result["warning_count"] == 0, result["diagnostics"]


def test_terraform_validate_module(terraform: Terraform, module_dir: Path) -> None:
    validate_without_warnings(terraform, module_dir)


def test_terraform_validate_example(terraform: Terraform, example_dir: Path) -> None:
    validate_without_warnings(terraform, example_dir)


def test_terraform_validate_efs_example(terraform: Terraform, efs_dir: Path) -> None:
    validate_without_warnings(terraform, efs_dir)


def test_terraform_validate_and_test_container_module(terraform: Terraform) -> None:
    """modules/container needs no provider: its own tests plan it with various inputs."""
    directory = terraform.copy_module("container-module") / CONTAINER_MODULE
    terraform.run("init", "-backend=false", "-input=false", cwd=directory)
    validate_without_warnings(terraform, directory)
    output = terraform.run("test", cwd=directory).stdout
    match = re.search(r"Success! (\d+) passed, 0 failed", output)
    assert match and int(match.group(1)) >= 9, output


def test_nothing_deprecated_in_provider_6_is_named() -> None:
    """aws_region's `name` is deprecated in provider 6 (and its `region` absent from 5): the
    modules read the region without naming either (validate sees only the mirror's version)."""
    sources = "\n".join(path.read_text() for path in sorted(MODULE.rglob("*.tf")))
    assert "data.aws_region" in sources
    assert not re.search(r"data\.aws_region\.[a-z_]+\.(name|id|region)\b", sources)


def mirror_versions() -> dict[int, list[str]]:
    mirror = find_plugin_dir()
    versions: dict[int, list[str]] = {}
    if mirror is not None:
        for path in sorted((mirror / TF_PROVIDER_DIR).glob("*.*.*")):
            versions.setdefault(int(path.name.split(".")[0]), []).append(path.name)
    return versions


@pytest.mark.parametrize("major", TF_PROVIDER_MAJORS)
def test_example_plans_with_each_allowed_provider_major(terraform: Terraform, major: int) -> None:
    """versions.tf allows hashicorp/aws >= 5.0, < 7.0: the example is planned with the newest
    version of each major the mirror holds, without a warning."""
    versions = mirror_versions()
    if major not in versions:
        pytest.skip(
            f"the provider mirror holds no hashicorp/aws {major}.x (it has "
            f"{', '.join(v for vs in versions.values() for v in vs) or 'nothing'}): "
            f"not tested with {major}.x"
        )
    version = max(versions[major], key=lambda v: tuple(int(p) for p in v.split(".")))
    directory = terraform.copy_module(f"provider-{major}") / EXAMPLE
    (directory / "provider_override.tf").write_text(
        'terraform {\n  required_providers {\n    aws = {\n      source  = "hashicorp/aws"\n'
        f'      version = "= {version}"\n    }}\n  }}\n}}\n'
    )
    terraform.run("init", "-backend=false", "-input=false", cwd=directory)
    lock = (directory / ".terraform.lock.hcl").read_text()
    assert f'version     = "{version}"' in lock, lock
    plan = terraform.run("plan", "-input=false", "-lock=false", cwd=directory)
    assert "Warning" not in plan.stdout + plan.stderr, plan.stdout + plan.stderr
    print(f"planned with hashicorp/aws {version}")


def test_terraform_test_module(module_tests: BackgroundModuleTests) -> None:
    """deploy/terraform/tests/*.tftest.hcl with mock_provider "aws": policy scoping, container
    wiring, bucket settings and input validation."""
    returncode, output = module_tests.result()
    assert returncode == 0, output
    summary = output.strip().splitlines()[-1]
    match = re.search(r"Success! (\d+) passed, 0 failed", summary)
    assert match, output
    assert int(match.group(1)) >= 20, summary


def test_plan_policy_is_least_privilege(example_plan: dict[str, Any]) -> None:
    """The policy JSON the real provider renders (the module's tests see mocked JSON)."""
    policy = json.loads(example_plan["planned_values"]["outputs"]["task_policy_json"]["value"])
    bucket = "arn:aws:s3:::replace-with-bucket-name"
    by_action: dict[str, list[dict[str, Any]]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        for action in actions:
            assert "*" not in action
            by_action.setdefault(action, []).append(statement)
    (listing,) = by_action.pop("s3:ListBucket")
    assert listing["Resource"] == bucket
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "files-app/*"}}
    for action in (
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ):
        (statement,) = by_action.pop(action)
        assert statement["Resource"] == f"{bucket}/files-app/*"
        assert "Condition" not in statement
    key = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        (statement,) = by_action.pop(action)
        assert statement["Resource"] == key
        # the key only through S3 in the bucket's region (kms:ViaService)
        assert statement["Condition"] == {
            "StringEquals": {"kms:ViaService": "s3.eu-west-2.amazonaws.com"}
        }
    assert by_action == {}, f"unexpected permissions: {sorted(by_action)}"


def test_plan_task_role_trusts_ecs_tasks_of_its_account_only(example_plan: dict[str, Any]) -> None:
    """aws:SourceAccount in the task role's trust policy: another account's ECS cannot pass
    the role to its tasks (the confused deputy)."""
    role = module_resource(example_plan, "aws_iam_role.task[0]")
    trust = json.loads(role["assume_role_policy"])
    assert trust["Statement"] == [
        {
            "Sid": "EcsTasksAssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
        }
    ]


def test_task_role_policy_files_are_the_modules(terraform: Terraform) -> None:
    """deploy/task-role-policy.json and deploy/task-role-trust-policy.json, for users not on
    Terraform, are what the container module renders with the task definition's placeholders
    (scripts/task_policy.py writes them)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import task_policy
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    rendered = task_policy.render(terraform.binary, terraform.env)
    assert set(rendered) == {TASK_POLICY_FILE, TRUST_POLICY_FILE}
    for path, text in rendered.items():
        assert path.read_text() == text, f"{path.name} is stale: run scripts/task_policy.py"
    policy = json.loads(TASK_POLICY_FILE.read_text())
    resources = {statement["Resource"] for statement in policy["Statement"]}
    assert "arn:aws:s3:::REPLACE_WITH_BUCKET_NAME/REPLACE_WITH_PREFIX/*" in resources
    readme = (DEPLOY / "README.md").read_text()
    for token in (
        "REPLACE_WITH_KMS_KEY_ID",
        "task-role-policy.json",
        "task-role-trust-policy.json",
    ):
        assert token in readme


def test_plan_bucket_protections(example_plan: dict[str, Any]) -> None:
    """What the .checkov.yaml skips as module false positives is really there."""
    public = module_resource(example_plan, "aws_s3_bucket_public_access_block.this[0]")
    for setting in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert public[setting] is True, setting
    versioning = module_resource(example_plan, "aws_s3_bucket_versioning.this[0]")
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    encryption = module_resource(
        example_plan, "aws_s3_bucket_server_side_encryption_configuration.this[0]"
    )
    default = encryption["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == "aws:kms"
    assert default["kms_master_key_id"].startswith("arn:aws:kms:eu-west-2:123456789012:key/")
    (rule,) = module_resource(example_plan, "aws_s3_bucket_lifecycle_configuration.this[0]")["rule"]
    assert rule["status"] == "Enabled"
    assert rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] >= 1
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] >= 1
    assert not any(rule["filter"][0].get(key) for key in ("prefix", "tag", "and")), "whole bucket"
    ownership = module_resource(example_plan, "aws_s3_bucket_ownership_controls.this[0]")
    assert ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced"
    module_resource(example_plan, "aws_s3_bucket_policy.this[0]")  # TLS only: see the module tests


def test_module_sidecar_matches_the_json_task_definition(example_plan: dict[str, Any]) -> None:
    rendered = example_plan["planned_values"]["outputs"]["sidecar_container_definition"]["value"]
    registered = containers(taskdef_from_plan(example_plan))[SIDECAR]
    assert registered == rendered, "the task definition registers the output as it is"
    expected = sidecar_of(load_taskdef())
    for key in (
        "healthCheck",
        "restartPolicy",
        "portMappings",
        "stopTimeout",
        "dockerLabels",
        "readonlyRootFilesystem",
        "user",
        "essential",
        "mountPoints",
    ):
        assert rendered[key] == expected[key], key
    module_call = example_plan["configuration"]["root_module"]["module_calls"]["s3sync"]
    extra = set(module_call["expressions"]["sync_settings"]["constant_value"])
    assert extra, "the example passes sync_settings"
    assert set(environment(rendered)) == set(environment(expected)) | extra
    for name in ("SYNC_DIR", "SYNC_LOG_FORMAT", "SYNC_HTTP_PORT", "SYNC_SHUTDOWN_TIMEOUT"):
        assert environment(rendered)[name] == environment(expected)[name], name


def test_sidecar_container_json_is_the_task_definitions_sidecar() -> None:
    """deploy/sidecar-container.json, the container to merge into a task definition of your own,
    is exactly the sidecar of deploy/ecs-taskdef.json."""
    assert json.loads(SIDECAR_FILE.read_text()) == sidecar_of(load_taskdef())


def test_readme_jq_merge_gives_the_complete_task_definition(tmp_path: Path) -> None:
    """The README's jq line, on ecs-taskdef.json without the sidecar and its wiring, gives
    ecs-taskdef.json back: the sidecar, the volume, the apps' mount points and dependsOn."""
    assert jq_merged_taskdef(tmp_path) == load_taskdef()


# A task with a FireLens log router, the CloudWatch agent and the X-Ray daemon beside two apps:
# the apps use the folder; the others must never wait for the restore.
TASK_WITH_AGENTS: dict[str, Any] = {
    "family": "app-with-agents",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "1024",
    "memory": "2048",
    "containerDefinitions": [
        {
            "name": "app",
            "image": "app:1",
            "essential": True,
            "user": "1000:1000",
            "dependsOn": [{"containerName": "log_router", "condition": "START"}],
            "logConfiguration": {"logDriver": "awsfirelens", "options": {"Name": "cloudwatch"}},
        },
        {
            "name": "worker",
            "image": "worker:1",
            "user": "1000:1000",
            "mountPoints": [{"sourceVolume": "cache", "containerPath": "/cache"}],
        },
        {
            "name": "log_router",
            "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
            "essential": True,
            "firelensConfiguration": {"type": "fluentbit"},
        },
        {
            "name": "cloudwatch-agent",
            "image": "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:latest",
            "essential": False,
        },
        {
            "name": "xray-daemon",
            "image": "public.ecr.aws/xray/aws-xray-daemon:latest",
            "essential": False,
        },
    ],
    "volumes": [{"name": "cache"}],
}
SHARED_MOUNT = {"sourceVolume": "shared-data", "containerPath": "/data", "readOnly": False}
ON_THE_SIDECAR = {"containerName": SIDECAR, "condition": "HEALTHY"}


def test_readme_jq_merge_leaves_log_routers_and_agents_alone(tmp_path: Path) -> None:
    """Only the containers named as apps get the volume, and only the containers that mount it
    wait for the sidecar: a log router or an agent that waited for the restore would hold the
    app's logs and traces back (and a FireLens router never does, since the sidecar's own logs
    may go through it)."""
    merged = jq_merged_taskdef(tmp_path, TASK_WITH_AGENTS, apps="app,worker")
    report = botocore.validate.ParamValidator().validate(merged, register_shape())
    assert not report.has_errors(), report.generate_report()
    before = containers(TASK_WITH_AGENTS)
    after = containers(merged)
    assert after[SIDECAR] == json.loads(SIDECAR_FILE.read_text())
    for name in ("log_router", "cloudwatch-agent", "xray-daemon"):
        assert after[name] == before[name], name
    assert after["app"]["mountPoints"] == [SHARED_MOUNT]
    assert after["app"]["dependsOn"] == [*before["app"]["dependsOn"], ON_THE_SIDECAR]
    assert after["worker"]["mountPoints"] == [*before["worker"]["mountPoints"], SHARED_MOUNT]
    assert after["worker"]["dependsOn"] == [ON_THE_SIDECAR]
    assert list(after) == [*before, SIDECAR], "in the same order, the sidecar last"
    assert merged["volumes"] == [{"name": "cache"}, {"name": "shared-data"}]

    # Run again (a newer sidecar-container.json): the sidecar is replaced, nothing is doubled.
    assert jq_merged_taskdef(tmp_path, merged, apps="app,worker") == merged

    # A router that mounts the volume (its own choice) still never waits for the sidecar.
    mounting = json.loads(json.dumps(TASK_WITH_AGENTS))
    mounting["containerDefinitions"][2]["mountPoints"] = [SHARED_MOUNT]
    router = containers(jq_merged_taskdef(tmp_path, mounting, apps="app"))["log_router"]
    assert "dependsOn" not in router


def test_readme_jq_merge_refuses_an_app_the_task_does_not_have(tmp_path: Path) -> None:
    """A misspelt name would leave the app starting on an empty folder: jq fails instead."""
    result = run_readme_jq(tmp_path, TASK_WITH_AGENTS, apps="app,wroker")
    assert result.returncode != 0
    assert "no container named wroker in the task definition" in result.stderr
    assert result.stdout == ""


def test_root_module_takes_the_sidecar_from_the_container_module(
    example_plan: dict[str, Any],
) -> None:
    calls = example_plan["configuration"]["root_module"]["module_calls"]["s3sync"]["module"][
        "module_calls"
    ]
    assert calls["container"]["source"] == "./modules/container"
    assert not module_resources(example_plan, "module.s3sync.module.container")
    policy = module_resource(example_plan, "aws_iam_role_policy.task[0]")["policy"]
    rendered = example_plan["planned_values"]["outputs"]["task_policy_json"]["value"]
    assert json.loads(policy) == json.loads(rendered)


def module_resources(plan: dict[str, Any], address: str) -> list[dict[str, Any]]:
    """The planned resources of the module at `address` (nested anywhere)."""
    found: list[dict[str, Any]] = []
    stack = list(plan["planned_values"]["root_module"].get("child_modules", []))
    while stack:
        module = stack.pop()
        if module["address"] == address:
            found += module.get("resources", [])
        stack += module.get("child_modules", [])
    return found


def test_efs_example_one_task_per_access_point_with_the_sidecars_owner(
    efs_plan: dict[str, Any],
) -> None:
    (volume,) = module_resource(efs_plan, "aws_ecs_task_definition.this")["volume"]
    (efs,) = volume["efs_volume_configuration"]
    assert efs["transit_encryption"] == "ENABLED"
    assert efs["authorization_config"][0]["iam"] == "ENABLED"
    user = sidecar_of(taskdef_from_plan(efs_plan))["user"]
    uid, gid = (int(part) for part in user.split(":"))
    access_point = root_resource(efs_plan, "aws_efs_access_point.data")
    assert access_point["posix_user"][0]["uid"] == uid
    assert access_point["posix_user"][0]["gid"] == gid
    creation = access_point["root_directory"][0]["creation_info"][0]
    assert (creation["owner_uid"], creation["owner_gid"]) == (uid, gid)
    assert root_resource(efs_plan, "aws_efs_file_system.data")["encrypted"] is True
    service = module_resource(efs_plan, "aws_ecs_service.this[0]")
    assert service["desired_count"] <= 1
    assert service["deployment_maximum_percent"] == 100, "old task stops before the new starts"
    assert service["deployment_minimum_healthy_percent"] == 0
    # The task role may mount and write only through the access point.
    efs_policy = module_resource(efs_plan, "aws_iam_role_policy.efs[0]")
    assert efs_policy["name"] == "s3sync-sidecar-efs"
    # The tasks' security group is the service's (checkov cannot see it across the module).
    call = efs_plan["configuration"]["root_module"]["module_calls"]["s3sync"]["expressions"]
    assert "aws_security_group.tasks.id" in call["security_group_ids"]["references"]
    # The file system's policy (its ARN is known after apply only: read from the configuration).
    (document,) = [
        r
        for r in efs_plan["configuration"]["root_module"]["resources"]
        if r["address"] == "data.aws_iam_policy_document.efs"
    ]
    statements = document["expressions"]["statement"]
    assert {st["sid"]["constant_value"] for st in statements} == {
        "DenyWithoutTLS",
        "DenyWithoutTheAccessPoint",
    }
    assert all(st["effect"]["constant_value"] == "Deny" for st in statements)


def checkov_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "checkov"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("checkov")


def test_checkov_skips_have_reasons() -> None:
    config = yaml.safe_load(CHECKOV_CONFIG.read_text())
    skipped = config["skip-check"]
    assert skipped
    text = CHECKOV_CONFIG.read_text()
    for check in skipped:
        assert re.search(rf"^# {re.escape(check)}: \S+", text, re.MULTILINE), check


def assert_checkov_passes(terraform: Terraform, example_plan_file: Path) -> None:
    """checkov on a plan (JSON) with the module's .checkov.yaml: nothing failed."""
    binary = checkov_binary()
    if binary is None:
        pytest.skip("checkov is not installed: pip install -e '.[test]'")
    env = {**terraform.env, "LOG_LEVEL": "ERROR", "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run(
        [
            binary,
            "--file",
            str(example_plan_file),
            "--framework",
            "terraform_plan",
            "--config-file",
            str(CHECKOV_CONFIG),
            "--skip-download",
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=TF_TIMEOUT,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    (report,) = [r for r in reports if r["check_type"] == "terraform_plan"]
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= 10, summary
    assert summary["passed"] > 0, summary
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == [], (
        "checkov failed checks: fix them, or skip them in deploy/terraform/.checkov.yaml "
        "with the reason:\n" + "\n".join(failed)
    )
    assert result.returncode == 0


@pytest.mark.parametrize("plan_fixture", ["example_plan_file", "efs_plan_file"])
def test_checkov_on_the_example_plans(
    terraform: Terraform, plan_fixture: str, request: pytest.FixtureRequest
) -> None:
    assert_checkov_passes(terraform, request.getfixturevalue(plan_fixture))


# The change queue's settings per source, as a module call's arguments (an override file).
CHANGE_NOTIFICATIONS = {
    "s3": "enable_change_notifications = true\n",
    "eventbridge": (
        "enable_change_notifications = true\n"
        '  change_notifications_source = "eventbridge"\n'
        "  enable_bucket_eventbridge   = true\n"
    ),
}


@pytest.mark.parametrize("source", sorted(CHANGE_NOTIFICATIONS))
def test_checkov_on_the_example_with_change_notifications(
    terraform: Terraform, source: str
) -> None:
    """The examples leave the change queue off: the Fargate example planned with it on (an
    override file), for each source, so that checkov sees the queues, their policy and the
    source, and the real provider takes them without a warning."""
    directory = terraform.copy_module(f"notifications-{source}") / EXAMPLE
    (directory / "notifications_override.tf").write_text(
        f'module "s3sync" {{\n  {CHANGE_NOTIFICATIONS[source]}}}\n'
    )
    terraform.run("init", "-backend=false", "-input=false", cwd=directory)
    plan = terraform.run("plan", "-input=false", "-lock=false", "-out=tfplan", cwd=directory)
    assert "Warning" not in plan.stdout + plan.stderr, plan.stdout + plan.stderr
    plan_file = directory / "plan.json"
    plan_file.write_text(terraform.run("show", "-json", "tfplan", cwd=directory).stdout)
    planned = json.loads(plan_file.read_text())
    for queue in ("aws_sqs_queue.changes[0]", "aws_sqs_queue.changes_dlq[0]"):
        assert module_resource(planned, queue)["sqs_managed_sse_enabled"] is True, queue
    module_resource(planned, "aws_sqs_queue_policy.changes[0]")
    module_resource(planned, "aws_s3_bucket_notification.this[0]")
    if source == "eventbridge":
        module_resource(planned, "aws_cloudwatch_event_rule.changes[0]")
        module_resource(planned, "aws_cloudwatch_event_target.changes[0]")
    assert_checkov_passes(terraform, plan_file)


@pytest.mark.parametrize("module", [MODULE, MODULE / CONTAINER_MODULE], ids=["root", "container"])
def test_module_readme_documents_every_input_and_output(module: Path) -> None:
    readme = (module / "README.md").read_text()
    sources = "\n".join(path.read_text() for path in sorted(module.glob("*.tf")))
    variables = re.findall(r'^variable "([a-z0-9_]+)"', sources, re.MULTILINE)
    outputs = re.findall(r'^output "([a-z0-9_]+)"', sources, re.MULTILINE)
    assert variables and outputs
    for name in variables + outputs:
        assert re.search(rf"^\| `{name}` \|", readme, re.MULTILINE), f"{name} not in README"
    for block in re.findall(r'^(?:variable|output) "[a-z0-9_]+" \{.*?^\}', sources, re.M | re.S):
        assert "description" in block, block.splitlines()[0]
        if block.startswith("variable"):
            assert re.search(r"^\s+type\s+=", block, re.MULTILINE), block.splitlines()[0]


def ecs_module_example(terraform: Terraform, major: int, copy: str) -> Path:
    """examples/ecs-module-vN, on a copy, with terraform-aws-modules/ecs's service module
    replaced by the stub of its major version (tests/deploy/ecs_module_stub/: its inputs' names
    and types, refusing container definition keys that major does not take) and the stub's
    `terraform test` file, initialised with the mirror's provider."""
    versions = mirror_versions()
    if not versions:
        terraform.need_mirror()
    directory = terraform.copy_module(copy) / "examples" / f"ecs-module-v{major}"
    main = directory / "main.tf"
    (constraint,) = ECS_MODULE_SOURCE.findall(main.read_text())
    assert constraint == {5: "~> 5.12", 6: "~> 6.0"}[major]
    main.write_text(ECS_MODULE_SOURCE.sub('source = "./ecs-module-stub"', main.read_text()))
    shutil.copytree(ECS_MODULE_STUBS / f"v{major}", directory / "ecs-module-stub")
    (directory / "tests").mkdir()
    (directory / "ecs-module-stub" / "example.tftest.hcl").rename(
        directory / "tests" / "example.tftest.hcl"
    )
    # v6 needs AWS provider 6; the mirror may hold 5 only. The example's own resources (a role
    # policy) are the same in both, and the stub needs no provider: the newest version the
    # mirror holds stands in, saying so.
    newest = max(
        (v for vs in versions.values() for v in vs), key=lambda v: tuple(map(int, v.split(".")))
    )
    if int(newest.split(".")[0]) != major:
        print(f"ecs-module-v{major}: validated with hashicorp/aws {newest} (the mirror's)")
    (directory / "provider_override.tf").write_text(
        'terraform {\n  required_providers {\n    aws = {\n      source  = "hashicorp/aws"\n'
        f'      version = "= {newest}"\n    }}\n  }}\n}}\n'
    )
    terraform.run("init", "-backend=false", "-input=false", cwd=directory)
    return directory


# Each major's names for the app's mount points, and the other major's.
ECS_MODULE_MOUNT_KEYS = {5: ("mount_points", "mountPoints"), 6: ("mountPoints", "mount_points")}


@pytest.mark.parametrize("major", [5, 6])
def test_terraform_aws_modules_ecs_examples_validate_and_plan(
    terraform: Terraform, major: int
) -> None:
    """The terraform-aws-modules/ecs examples, v5 and v6: valid without a warning, and planned
    (`terraform test`, mocked AWS) with the sidecar's entry, the app's mount and dependency in
    that major's names, the volume and the tasks' role policy."""
    directory = ecs_module_example(terraform, major, f"ecs-module-v{major}")
    validate_without_warnings(terraform, directory)
    output = terraform.run("test", cwd=directory).stdout
    assert "Success! 1 passed, 0 failed." in output, output


@pytest.mark.parametrize("major", [5, 6])
def test_terraform_aws_modules_ecs_stubs_refuse_the_other_majors_names(
    terraform: Terraform, major: int
) -> None:
    """The stubs can fail: the app's mount point under the other major's name (which the real
    module would drop or ignore, leaving the app without the folder) stops the plan."""
    directory = ecs_module_example(terraform, major, f"ecs-module-v{major}-other-names")
    ours, theirs = ECS_MODULE_MOUNT_KEYS[major]
    main = directory / "main.tf"
    text = main.read_text()
    assert text.count(f"      {ours} = ") == 1
    main.write_text(text.replace(f"      {ours} = ", f"      {theirs} = "))
    result = subprocess.run(
        terraform.command("test"),
        cwd=directory,
        env=terraform.env,
        capture_output=True,
        text=True,
        timeout=TF_TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    assert f"terraform-aws-modules/ecs v{major} does not" in " ".join(
        (result.stdout + result.stderr).split()
    )


def test_no_terraform_files_left_in_the_repository() -> None:
    """Terraform ran on a copy: nothing it writes may land in deploy/terraform (runs last)."""
    litter = [
        str(path.relative_to(ROOT))
        for pattern in (".terraform", ".terraform.lock.hcl", "*.tfstate", "tfplan", "plan.json")
        for path in MODULE.rglob(pattern)
    ]
    assert litter == []
