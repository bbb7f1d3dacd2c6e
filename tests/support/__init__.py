"""What the tests share, each written once; tests/conftest.py's fixtures are thin wrappers of it.

- `s3_server`: an S3 server process as the tests meet it (`S3Server`, `REGION`), and moto's
  with SigV4 on (`moto_process`); `moto_server.py` is that server, with the behaviours moto
  lacks.
- `rgw`: Ceph's RADOS Gateway on a one-node cluster of its own (`rgw_process`), the other
  server: tests marked `any_s3` run on both (tests/conftest.py).
- `bucket`: `Bucket`, a test bucket as another client sees it (botocore), and `content_of`.
- `faultproxy`: `FaultProxy`, a real HTTP proxy in front of the server that slows, fails, drops
  and rewrites, refuses writes without a header (a bucket policy's stand-in), and records every
  request it sees (`requests`: method, path, headers).
- `imds`: `Imds`, an EC2 instance metadata service shaped like IMDSv2 (session tokens, 401s).
- `roles`: IAM on moto: a role allowed S3 (`s3_role`), a user allowed only to assume roles
  (`assume_only_user`), credentials minted by moto's STS (`mint`).
- `hostile`: queue message bodies no S3 sender writes (`HOSTILE_BODIES`), for the change feed.
- `syncers`: `Syncers`, in-process `Syncer`s on temporary folders (the `syncer_factory` fixture).
- `sidecars`: `SidecarProcess`, the real console script as a subprocess (after a prefix that
  execs it, e.g. `prlimit`), and `Sidecars`, those a test starts (the `run_sidecar` fixture).
- `environments`: a sidecar's environment against the test bucket (`sidecar_environment`), and
  the least `load_settings` accepts, with no server behind it (`minimal_environment`).
- `waiting`: `eventually` (a deadline poll, never a bare sleep) and `in_thread`.
- `metrics`: in process, `metric` (summed over the labels not named) and `requests`; from a
  /metrics text, `scrape`, `Scrape` and `series` (the one series with exactly these labels).
- `local_http`: `free_port` and `http_get`, on 127.0.0.1.
- `flood`: `Flood`, a connection flood of unfinished requests on a local port from an outside
  peer (127.0.0.2), `hold` for one such connection, and `limited` (an open-files limit).
- `folders`: `read`, `synced_folder`, `conflict_copies`, and `tree_at` / `parents_made` for the
  folder as the engine holds it.
- `inotify_queue`: `small_inotify_queue`, to overflow inotify on purpose.
- `nonroot`: the sidecar as the image runs it, as uid 64000 beside an app writing as uid 64001
  (`NonRootSidecar`, `start`, `app`, `shared_volume`), for tests/nonroot/.
- `ROOT` (here): the repository, for the tests that read its files.

Importable as `support` from pytest (`pythonpath` in pyproject.toml), from `make chaos`
(`PYTHONPATH=tests`) and from bench/ (which puts tests/ on `sys.path`). Nothing is imported
here, so that `support.moto_server` stays cheap to import."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
