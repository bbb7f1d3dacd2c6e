"""Write the README's configuration table from the table of settings (sidecar/settings/table.py).

    .venv/bin/python scripts/settings_table.py          # rewrite README.md's table
    .venv/bin/python scripts/settings_table.py --check  # exit 1 if it differs

The table runs from its header line to the last `SYNC_*` row; rows after it (the AWS credentials)
are the README's own. tests/service/test_settings.py checks the same equality.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sidecar.settings.table import readme_table

README = Path(__file__).resolve().parent.parent / "README.md"


def rewritten(text: str) -> str:
    lines = text.split("\n")
    generated = readme_table().split("\n")
    start = lines.index(generated[0])
    end = start + 2
    while end < len(lines) and lines[end].startswith("| `SYNC_"):
        end += 1
    return "\n".join([*lines[:start], *generated, *lines[end:]])


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = rewritten(text)
    if "--check" in argv:
        if new != text:
            print("README.md's configuration table differs from the table of settings")
            return 1
        return 0
    if new != text:
        README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
