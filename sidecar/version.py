"""The one place the version is written: pyproject.toml reads it from here (setuptools `attr`,
without importing the package), and so do `s3sync-sidecar --version`, the `s3sync_build_info`
metric and the image's label test."""

__version__ = "0.1.0"
