"""Write the task role's policies as JSON files next to the task definition, from the Terraform
that deploys them (deploy/terraform/modules/container: `task_policy_json` and
`task_role_trust_policy_json`), so that users not on Terraform get the same policy:

    .venv/bin/python scripts/task_policy.py          # rewrite deploy/task-role-*.json
    .venv/bin/python scripts/task_policy.py --check  # exit 1 if they differ

The module is applied (it creates nothing and needs no provider) with the task definition's
placeholders: the bucket `REPLACE_WITH_BUCKET_NAME`, the prefix `REPLACE_WITH_PREFIX/`, the KMS
key `…:key/REPLACE_WITH_KMS_KEY_ID` (delete that statement for a bucket without SSE-KMS), the
account 123456789012 and the region eu-west-2. tests/deploy/test_deploy.py checks the same
equality. Needs `terraform` on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MODULE = DEPLOY / "terraform" / "modules" / "container"
FILES = {
    "task_policy_json": DEPLOY / "task-role-policy.json",
    "task_role_trust_policy_json": DEPLOY / "task-role-trust-policy.json",
}
# Terraform's variables validate a bucket name's form: rendered in lower case, then spelt as the
# task definition spells its placeholder.
_BUCKET = "replace-with-bucket-name"
_CONFIG = """
module "container" {
  source         = %(module)s
  image          = "REPLACE_WITH_SIDECAR_IMAGE"
  bucket_name    = "%(bucket)s"
  bucket_region  = "eu-west-2"
  prefix         = "REPLACE_WITH_PREFIX/"
  kms_key_arn    = "arn:aws:kms:eu-west-2:123456789012:key/REPLACE_WITH_KMS_KEY_ID"
  account_id     = "123456789012"
  log_group_name = "REPLACE_WITH_LOG_GROUP"
}

output "task_policy_json" {
  value = module.container.task_policy_json
}

output "task_role_trust_policy_json" {
  value = module.container.task_role_trust_policy_json
}
"""
_ORDER = ("Sid", "Effect", "Principal", "Action", "Resource", "Condition")


def render(terraform: str = "terraform", env: Mapping[str, str] | None = None) -> dict[Path, str]:
    """Each file's text, as the module renders it now."""
    environment = dict(os.environ if env is None else env)
    environment.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
    work = Path(tempfile.mkdtemp(prefix="task-policy-"))
    try:
        (work / "main.tf").write_text(
            _CONFIG % {"module": json.dumps(str(MODULE)), "bucket": _BUCKET}
        )
        for args in (
            ("init", "-backend=false", "-input=false"),
            ("apply", "-auto-approve", "-input=false", "-lock=false"),
        ):
            _run([terraform, *args, "-no-color"], work, environment)
        shown = _run([terraform, "output", "-json", "-no-color"], work, environment)
        outputs = json.loads(shown)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {path: _pretty(outputs[name]["value"]) for name, path in FILES.items()}


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 - terraform, with our own arguments
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _pretty(document_json: str) -> str:
    """The policy as people read it: statements' keys in the usual order, two-space indents."""
    document: dict[str, Any] = json.loads(document_json)
    document = {"Version": document["Version"], "Statement": document["Statement"]}
    statements = []
    for statement in document["Statement"]:
        keys = sorted(statement, key=lambda key: _ORDER.index(key) if key in _ORDER else 99)
        statements.append({key: statement[key] for key in keys})
    document["Statement"] = statements
    text = json.dumps(document, indent=2) + "\n"
    return text.replace(_BUCKET, "REPLACE_WITH_BUCKET_NAME")


def main(argv: list[str]) -> int:
    check = argv[1:] == ["--check"]
    if argv[1:] not in ([], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    stale = []
    for path, text in render().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(text)
    for path in stale:
        print(f"{path.relative_to(ROOT)} {'differs' if check else 'written'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
