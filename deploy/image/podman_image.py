"""Build and run the s3sync-sidecar image with podman, where no Docker engine runs.

Used by `tests/deploy/test_image.py`, and by hand:

    python3 deploy/image/podman_image.py            # build localhost/s3sync-sidecar:e2e
    python3 deploy/image/podman_image.py --uid 1001 --gid 1001 --tag localhost/s3sync-sidecar:dev

What it does, each phase timed and printed on stderr:

1. apt: podman, buildah, runc and debootstrap must be installed; only with
   S3SYNC_INSTALL_PACKAGES=1 (as .ci/run sets) are missing ones installed (as root, or with
   passwordless sudo): `make test` never changes the host unasked.
2. base: the Dockerfile's `BASE_IMAGE` is replaced by a Debian bookworm image made here with
   debootstrap (python3 is 3.11 there), so no registry other than Debian's and PyPI is needed.
   It is cached twice: as a podman image tagged with a key of the bookworm package list
   (the apt InRelease file), and as a tarball under ~/.cache/s3sync-sidecar/ (or
   $S3SYNC_IMAGE_CACHE) that is imported when podman's storage lacks the image.
3. build: `podman build --format docker` (keeps HEALTHCHECK), no layer cache, with the host's
   CA bundle and a pip.conf mounted read-only so that pip inside the build trusts what the
   host's pip trusts (only http(s) indexes are passed on, never the host's local file:// ones).

podman runs with a generated containers.conf (`CONTAINERS_CONF`): runc, cgroupfs, a file
events logger and `default_ulimits` no higher than this process's hard limits (nproc also
capped at 4096: podman lowers its own nproc limit, and runc cannot raise it back without
CAP_SYS_RESOURCE). Every command has a timeout.
"""

# ruff: noqa: S603
# (S603: this is a build tool; it runs podman, apt-get, debootstrap and tar with arguments it
# builds itself, never through a shell string.)
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
APT_PACKAGES = ("podman", "buildah", "runc", "debootstrap", "catatonit")  # catatonit: a pod's pause
SUITE = "bookworm"
INCLUDE = ("python3", "python3-pip", "python3-venv", "python-is-python3", "ca-certificates")
BASE_REPOSITORY = "localhost/s3sync-sidecar-base"
DEFAULT_TAG = "localhost/s3sync-sidecar:e2e"
RECIPE = "1"  # bump when the base image recipe below changes
DEFAULT_MIRROR = "http://deb.debian.org/debian"
NOFILE_CAP = 65536
NPROC_CAP = 4096


class Unavailable(Exception):
    """This machine cannot build or run containers with podman; the message says why."""


def log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def _tail(text: str | bytes | None, lines: int = 25) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Timings:
    phases: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        log(f"phase {name}: start")
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.phases[name] = self.phases.get(name, 0.0) + elapsed
            log(f"phase {name}: {elapsed:.1f} s")

    def summary(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases.items())


def cache_dir() -> Path:
    configured = os.environ.get("S3SYNC_IMAGE_CACHE")
    path = Path(configured) if configured else Path.home() / ".cache" / "s3sync-sidecar"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / "s3sync-sidecar-cache"
        path.mkdir(parents=True, exist_ok=True)
    return path


def _privilege_prefix() -> list[str]:
    """[] as root, sudo -n with passwordless sudo; else Unavailable."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo is None:
        raise Unavailable("not root, and sudo is not installed: podman/debootstrap need root")
    probe = subprocess.run(
        [sudo, "-n", "true"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        raise Unavailable(f"not root, and sudo needs a password: {_tail(probe.stderr, 2)}")
    return [sudo, "-n"]


def _run(
    argv: Sequence[str],
    timeout: float,
    check: bool = True,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            input=stdin,
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(
            f"timed out after {timeout:.0f} s: {' '.join(argv)}\n{_tail(error.stderr)}"
        ) from error
    if check and result.returncode != 0:
        raise RuntimeError(
            f"exit {result.returncode}: {' '.join(argv)}\n"
            f"{_tail(result.stdout, 10)}\n{_tail(result.stderr)}"
        )
    return result


def _missing_packages() -> list[str]:
    if shutil.which("dpkg-query") is None:
        raise Unavailable("no dpkg: podman is installed here from Debian packages only")
    missing = []
    for package in APT_PACKAGES:
        result = _run(["dpkg-query", "-W", "-f", "${Status}", package], timeout=30, check=False)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


INSTALL_SWITCH = "S3SYNC_INSTALL_PACKAGES"  # .ci/run sets it; make test never installs unasked


def install_packages(sudo: list[str]) -> None:
    missing = _missing_packages()
    if not missing:
        log("apt: " + ", ".join(APT_PACKAGES) + " already installed")
        return
    if os.environ.get(INSTALL_SWITCH) != "1":
        raise Unavailable(
            f"{', '.join(missing)} not installed. To run the image tests: "
            f"sudo apt-get install {' '.join(missing)} (or {INSTALL_SWITCH}=1 make test, "
            "which installs them, as .ci/run does)"
        )
    if shutil.which("apt-get") is None:
        raise Unavailable(f"apt-get not available to install {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"apt: installing {', '.join(missing)}")
    try:
        _run([*sudo, "apt-get", "update", "-qq"], timeout=300, env=env)
        install = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq"]
        _run([*sudo, *install, *missing], timeout=600, env=env)
    except RuntimeError as error:
        raise Unavailable(f"apt-get could not install {', '.join(missing)}: {error}") from error


def _hard_limit(kind: int, cap: int) -> int:
    _, hard = resource.getrlimit(kind)
    if hard == resource.RLIM_INFINITY or hard > cap:
        return cap
    return int(hard)


def write_containers_conf(directory: Path) -> Path:
    nofile = _hard_limit(resource.RLIMIT_NOFILE, NOFILE_CAP)
    nproc = _hard_limit(resource.RLIMIT_NPROC, NPROC_CAP)
    path = directory / "containers.conf"
    path.write_text(
        "# Written by deploy/image/podman_image.py\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "\n[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    return path


class Podman:
    """podman (through sudo when not root) with the generated containers.conf."""

    def __init__(self, sudo: list[str], conf: Path) -> None:
        self.conf = conf
        self.prefix = [*sudo, "env", f"CONTAINERS_CONF={conf}", "podman"]

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return _run([*self.prefix, *args], timeout=timeout, check=check, stdin=stdin)

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, timeout=60, check=False).returncode == 0

    def image_id(self, image: str) -> str | None:
        result = self("image", "inspect", "--format", "{{.Id}}", image, timeout=60, check=False)
        if result.returncode != 0:
            return None
        return result.stdout.strip() or None

    def inspect(self, name: str, kind: str = "container") -> dict[str, Any]:
        data = json.loads(self(kind, "inspect", name, timeout=60).stdout)
        return dict(data[0])

    def image_size(self, image: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", image, timeout=60).stdout)


# --- the base image ---------------------------------------------------------------------------


def _apt_sources() -> list[tuple[str, list[str]]]:
    """(URI, suites) of the host's deb sources, deb822 and one-line formats."""
    found: list[tuple[str, list[str]]] = []
    directory = Path("/etc/apt/sources.list.d")
    for path in sorted(directory.glob("*.sources")) if directory.is_dir() else []:
        for block in path.read_text(errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    name, _, value = line.partition(":")
                    fields[name.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled") != "no":
                for uri in fields.get("uris", "").split():
                    found.append((uri, fields.get("suites", "").split()))
    lists = [Path("/etc/apt/sources.list")]
    lists += sorted(directory.glob("*.list")) if directory.is_dir() else []
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if words[:1] == ["deb"] and len(words) >= 3:
                found.append((words[1], [words[2]]))
    return found


def debian_mirror() -> str:
    configured = os.environ.get("S3SYNC_DEBIAN_MIRROR")
    if configured:
        return configured
    for uri, suites in _apt_sources():
        if SUITE in suites and "security" not in uri:
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def base_key(mirror: str) -> str:
    """Changes when the bookworm package list (apt's InRelease), the recipe or arch change."""
    digest = hashlib.sha256()
    digest.update(f"{RECIPE}|{SUITE}|{','.join(INCLUDE)}|{platform.machine()}|".encode())
    host = mirror.split("://", 1)[-1].rstrip("/").replace("/", "_")
    candidates = sorted(Path("/var/lib/apt/lists").glob(f"*_dists_{SUITE}_InRelease"))
    preferred = [path for path in candidates if path.name.startswith(host + "_dists")]
    lists = preferred or candidates
    if lists:
        digest.update(lists[0].read_bytes())
    else:  # no package list yet: rebuild weekly
        digest.update(time.strftime("%G-W%V").encode())
    return digest.hexdigest()[:16]


def _unmount_under(sudo: list[str], path: Path) -> None:
    """Best effort: debootstrap mounts /proc and /sys in the target; a failure can leave them."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    targets = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for target in sorted(targets, key=len, reverse=True):
        if target == str(path) or target.startswith(str(path) + "/"):
            _run([*sudo, "umount", "-l", target], timeout=60, check=False)


def _make_base_tarball(sudo: list[str], mirror: str, tarball: Path, timings: Timings) -> None:
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=tarball.parent))
    rootfs = work / "rootfs"
    debootstrap_log = tarball.parent / "debootstrap.log"
    try:
        with timings.phase("debootstrap"):
            command = [
                *sudo,
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(INCLUDE),
                SUITE,
                str(rootfs),
                mirror,
            ]
            log(" ".join(command))
            result = _run(command, timeout=900, check=False)
            debootstrap_log.write_text(result.stdout + result.stderr)
            if result.returncode != 0:
                raise RuntimeError(
                    f"debootstrap failed ({result.returncode}), see {debootstrap_log}:\n"
                    + _tail(result.stdout + result.stderr)
                )
        with timings.phase("base tarball"):
            # What a container image does not need: the downloaded .debs, apt lists, docs.
            _run(
                [
                    *sudo,
                    "sh",
                    "-c",
                    'cd "$1" && rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* '
                    "usr/share/doc usr/share/man usr/share/info",
                    "sh",
                    str(rootfs),
                ],
                timeout=120,
            )
            partial = tarball.with_suffix(".partial")
            _run(
                [
                    *sudo,
                    "tar",
                    "--numeric-owner",
                    "-I",
                    "gzip -1",
                    "-C",
                    str(rootfs),
                    "-cf",
                    str(partial),
                    ".",
                ],
                timeout=600,
            )
            partial.rename(tarball)
    finally:
        _unmount_under(sudo, work)
        _run([*sudo, "rm", "-rf", "--one-file-system", str(work)], timeout=300, check=False)


def ensure_base_image(podman: Podman, sudo: list[str], timings: Timings) -> str:
    """The debootstrap base image's tag, made or reused."""
    mirror = debian_mirror()
    key = base_key(mirror)
    tag = f"{BASE_REPOSITORY}:{SUITE}-{key}"
    cache = cache_dir()
    tarball = cache / f"base-{SUITE}-{key}.tar.gz"
    if podman.exists(tag):
        log(f"base: reusing image {tag}")
        return tag
    if tarball.is_file():
        log(f"base: importing cached {tarball}")
    else:
        log(f"base: no cached image or tarball for key {key}: debootstrap from {mirror}")
        _make_base_tarball(sudo, mirror, tarball, timings)
    with timings.phase("base import"):
        podman("import", "--change", 'CMD ["/bin/bash"]', str(tarball), tag, timeout=300)
    # Keep the cache bounded: older tarballs and base images of other keys go.
    for old in cache.glob(f"base-{SUITE}-*.tar.gz"):
        if old != tarball:
            old.unlink(missing_ok=True)
    listing = podman(
        "images", "--format", "{{.Repository}}:{{.Tag}}", BASE_REPOSITORY, timeout=60, check=False
    )
    for old_tag in listing.stdout.split():
        if old_tag != tag and old_tag.startswith(BASE_REPOSITORY + ":"):
            podman("rmi", old_tag, timeout=60, check=False)
    return tag


# --- the build ------------------------------------------------------------------------------


def _host_pip_config() -> dict[str, list[str]]:
    """cert, index-url and extra-index-url as the host's pip sees them (pip config + env)."""
    values: dict[str, list[str]] = {}
    result = _run([sys.executable, "-m", "pip", "config", "list"], timeout=60, check=False)
    for line in result.stdout.splitlines():
        name, _, value = line.partition("=")
        option = name.rsplit(".", 1)[-1].strip()
        values.setdefault(option, []).extend(value.strip().strip("'\"").split())
    for option, variable in (
        ("cert", "PIP_CERT"),
        ("index-url", "PIP_INDEX_URL"),
        ("extra-index-url", "PIP_EXTRA_INDEX_URL"),
    ):
        if os.environ.get(variable):
            values[option] = os.environ[variable].split()
    return values


def host_ca_bundle(pip_config: dict[str, list[str]] | None = None) -> Path | None:
    candidates = list((pip_config or {}).get("cert", []))
    candidates += [
        os.environ.get("REQUESTS_CA_BUNDLE", ""),
        os.environ.get("SSL_CERT_FILE", ""),
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_pip_conf(directory: Path) -> tuple[Path, Path | None]:
    """A pip.conf for the build (the host's CA and http(s) indexes) and the CA bundle."""
    config = _host_pip_config()
    ca = host_ca_bundle(config)
    lines = ["[global]", "disable-pip-version-check = true", "no-cache-dir = true"]
    if ca is not None:
        lines.append(f"cert = {ca}")
    web = [url for url in config.get("index-url", []) if url.startswith(("http://", "https://"))]
    if web:
        lines.append(f"index-url = {web[-1]}")
    extra = [
        url for url in config.get("extra-index-url", []) if url.startswith(("http://", "https://"))
    ]
    if extra:
        lines.append("extra-index-url = " + " ".join(extra))
    path = directory / "pip.conf"
    path.write_text("\n".join(lines) + "\n")
    return path, ca


def build_image(
    podman: Podman,
    base: str,
    *,
    tag: str = DEFAULT_TAG,
    uid: int = 1000,
    gid: int = 1000,
    timings: Timings | None = None,
) -> str:
    timings = timings or Timings()
    previous = podman.image_id(tag)
    with timings.phase("image build"), tempfile.TemporaryDirectory() as scratch:
        pip_conf, ca = build_pip_conf(Path(scratch))
        mounts = ["--volume", f"{pip_conf}:/etc/pip.conf:ro"]
        if ca is not None:
            mounts += ["--volume", f"{ca}:{ca}:ro"]
        command = [
            "build",
            "--format",
            "docker",
            "--layers=false",
            "--pull=never",
            "--file",
            str(DOCKERFILE),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            f"UID={uid}",
            "--build-arg",
            f"GID={gid}",
            *mounts,
            "--tag",
            tag,
            str(ROOT),
        ]
        log("podman " + " ".join(command))
        result = podman(*command, timeout=600, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"podman build failed ({result.returncode}):\n{_tail(result.stdout, 40)}\n"
                + _tail(result.stderr, 40)
            )
    current = podman.image_id(tag)
    if previous and previous != current:
        podman("rmi", previous, timeout=60, check=False)  # the last build's, now untagged
    return tag


# --- putting it together ------------------------------------------------------------------


@dataclass
class Prepared:
    podman: Podman
    base: str
    image: str
    uid: int
    gid: int
    timings: Timings


def prepare(
    uid: int = 1000, gid: int = 1000, tag: str = DEFAULT_TAG, timings: Timings | None = None
) -> Prepared:
    """Everything up to a built image. Unavailable: this machine can't; other errors: bugs."""
    timings = timings or Timings()
    if not sys.platform.startswith("linux"):
        raise Unavailable(f"podman containers need Linux, this is {sys.platform}")
    sudo = _privilege_prefix()
    with timings.phase("apt"):
        install_packages(sudo)
    if shutil.which("podman") is None:
        raise Unavailable("podman is not on PATH after installing it")
    podman = Podman(sudo, write_containers_conf(cache_dir()))
    info = podman("info", "--format", "{{.Store.GraphDriverName}}", timeout=120, check=False)
    if info.returncode != 0:
        raise Unavailable(f"`podman info` fails here: {_tail(info.stderr, 5)}")
    base = ensure_base_image(podman, sudo, timings)
    with timings.phase("podman smoke run"):
        smoke = podman("run", "--rm", "--network", "none", base, "true", timeout=120, check=False)
    if smoke.returncode != 0:
        raise Unavailable(f"podman cannot run a trivial container here: {_tail(smoke.stderr, 5)}")
    image = build_image(podman, base, tag=tag, uid=uid, gid=gid, timings=timings)
    log(f"image {image}: {podman.image_size(image) / 1e6:.1f} MB; {timings.summary()}")
    return Prepared(podman, base, image, uid, gid, timings)


class Resources:
    """Containers, pods, volumes and networks made through it are removed on exit, even when
    the body fails; `leftovers()` lists any that survived."""

    def __init__(self, podman: Podman, prefix: str | None = None) -> None:
        self.podman = podman
        self.prefix = prefix or f"s3sync-e2e-{uuid.uuid4().hex[:8]}"
        self.containers: list[str] = []
        self.pods: list[str] = []
        self.volumes: list[str] = []
        self.networks: list[str] = []

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def volume(self, what: str = "data") -> str:
        name = self.name(what)
        self.volumes.append(name)
        self.podman("volume", "create", name, timeout=60)
        return name

    def pod(self, what: str, *options: str) -> str:
        name = self.name(what)
        self.pods.append(name)
        self.podman("pod", "create", "--name", name, *options, timeout=120)
        return name

    def run(self, what: str, *arguments: str, timeout: float = 120) -> str:
        """`podman run --detach --name PREFIX-what ARGUMENTS`."""
        name = self.name(what)
        self.containers.append(name)
        self.podman("run", "--detach", "--name", name, *arguments, timeout=timeout)
        return name

    def cleanup(self) -> None:
        for name in reversed(self.containers):
            self.podman("rm", "--force", "--time", "0", name, timeout=120, check=False)
        for name in reversed(self.pods):
            self.podman("pod", "rm", "--force", "--time", "0", name, timeout=120, check=False)
        for name in reversed(self.volumes):
            self.podman("volume", "rm", "--force", name, timeout=60, check=False)
        for name in reversed(self.networks):
            self.podman("network", "rm", "--force", name, timeout=60, check=False)

    def leftovers(self) -> list[str]:
        found: list[str] = []
        for kind, command in (
            ("container", ("ps", "--all", "--format", "{{.Names}}")),
            ("pod", ("pod", "ps", "--format", "{{.Name}}")),
            ("volume", ("volume", "ls", "--format", "{{.Name}}")),
            ("network", ("network", "ls", "--format", "{{.Name}}")),
        ):
            listing = self.podman(*command, timeout=60, check=False).stdout.split()
            found += [f"{kind} {name}" for name in listing if name.startswith(self.prefix)]
        return found

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uid", type=int, default=1000)
    parser.add_argument("--gid", type=int, default=1000)
    parser.add_argument("--tag", default=DEFAULT_TAG)
    args = parser.parse_args(argv)
    try:
        prepared = prepare(args.uid, args.gid, args.tag)
    except Unavailable as error:
        log(f"cannot build here: {error}")
        return 3
    print(prepared.image)
    log(f"use podman with: CONTAINERS_CONF={prepared.podman.conf}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
