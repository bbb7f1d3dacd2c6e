"""`python -m sidecar` is the same as the `s3sync-sidecar` command."""

from .service.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
