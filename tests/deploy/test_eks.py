"""deploy/eks/s3sync-sidecar.yaml, the EKS example: validated against the Kubernetes API's own
schema (kubernetes-validate, offline: its schemas ship in the package) for the first version with
native sidecars (1.29) and the newest it knows, and held to the wiring that gives the app a
restored folder: a native sidecar (an init container with `restartPolicy: Always`) whose
startup probe is `/startupz` on its port, a valid configuration with web identity credentials,
one user, one volume, time for the final uploads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT

from sidecar.settings.config import VARIABLES, load_settings

EXAMPLE = ROOT / "deploy" / "eks" / "s3sync-sidecar.yaml"
FIRST_NATIVE_SIDECARS = "1.29.0"


def validator() -> Any:
    try:
        import kubernetes_validate.utils as utils
    except ImportError:
        message = "kubernetes-validate is not installed: .venv/bin/pip install kubernetes-validate"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return utils


def documents() -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(EXAMPLE.read_text()) if document]


def pod_spec() -> dict[str, Any]:
    (deployment,) = [d for d in documents() if d["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["spec"])


def sidecar() -> dict[str, Any]:
    (container,) = [c for c in pod_spec()["initContainers"] if c["name"] == "s3sync-sidecar"]
    return dict(container)


def environment(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


@pytest.mark.parametrize("version", [FIRST_NATIVE_SIDECARS, "latest"])
def test_the_example_is_valid_kubernetes(version: str) -> None:
    utils = validator()
    wanted = utils.latest_version() if version == "latest" else version
    for document in documents():
        utils.validate(document, wanted, strict=True)  # raises ValidationError


def test_the_schema_check_can_fail() -> None:
    """Before native sidecars, an init container's restartPolicy is refused: the validator
    really reads the fields."""
    utils = validator()
    (deployment,) = [d for d in documents() if d["kind"] == "Deployment"]
    with pytest.raises(utils.ValidationError, match="restartPolicy"):
        utils.validate(deployment, "1.27.0", strict=True)


def test_a_native_sidecar_with_a_startup_probe_on_startupz() -> None:
    container = sidecar()
    assert container["restartPolicy"] == "Always"
    probe = container["startupProbe"]["httpGet"]
    assert probe["path"] == "/startupz"
    (port,) = [p for p in container["ports"] if p["name"] == probe["port"]]
    assert port["containerPort"] == int(environment(container)["SYNC_HTTP_PORT"])
    # The restore may take a while: at least 10 minutes before the kubelet gives up.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "readinessProbe" not in container, "/readyz fails in outages: never gate the pod on it"


def test_the_sidecar_environment_is_a_valid_configuration(tmp_path: Path) -> None:
    env = environment(sidecar())
    assert {name for name in env if name.startswith("SYNC_")} <= {v.name for v in VARIABLES}
    token = tmp_path / "token"
    token.write_text("eyJ.token")
    filled = {
        name: value.lower().replace("_", "-") if value.startswith("REPLACE_WITH_") else value
        for name, value in env.items()
    }
    filled["SYNC_DIR"] = str(tmp_path / "data")
    settings = load_settings(
        {
            **filled,
            # what EKS sets for IRSA
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/files-app",
        }
    )
    assert settings.http_port == 9464 and settings.log_format == "json"
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert settings.shutdown_timeout < grace, "SIGKILL never cuts the final uploads"


def test_one_user_one_volume_and_irsa() -> None:
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    mounts = {
        container["name"]: {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        for container in [*spec["initContainers"], *spec["containers"]]
    }
    assert all(found == {"shared-data": "/data"} for found in mounts.values()), mounts
    assert {volume["name"] for volume in spec["volumes"]} == {"shared-data"}
    for container in [*spec["initContainers"], *spec["containers"]]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "runAsUser" not in container["securityContext"], "the pod's user, for both"
    (account,) = [d for d in documents() if d["kind"] == "ServiceAccount"]
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.startswith("arn:aws:iam::123456789012:role/")


def test_placeholders_are_documented() -> None:
    import re

    placeholders = set(re.findall(r"REPLACE_WITH_[A-Z_]+", EXAMPLE.read_text()))
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "eks/s3sync-sidecar.yaml" in readme
    for token in sorted(placeholders):
        assert token in readme, f"{token} is not explained in deploy/README.md"
