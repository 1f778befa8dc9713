#!/usr/bin/env bash
# Builds vitviz's wheel from pyproject.toml, installs it into a fresh virtual environment and runs the README's
# notebook example from outside the repository, offline: the wheel alone must carry the bundled model, its
# config and the sample photos. The heavy dependencies (torch, timm, ...) come from this machine's
# site-packages (--system-site-packages); vitviz itself only from the wheel.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# build from a copy of the tracked sources, so the checkout gets no build/ or *.egg-info
mkdir -p "$work/src"
(cd "$repo" && git ls-files -z pyproject.toml README.md vitviz | xargs -0 cp --parents -t "$work/src")
(cd "$work/src" && python -m pip wheel -q --no-deps --no-build-isolation --disable-pip-version-check -w "$work/dist" .) \
  2> >(grep -v "is ignored: it is neither" >&2)
ls -l "$work"/dist/*.whl

python -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-deps --no-index --disable-pip-version-check "$work"/dist/*.whl

cd "$work"  # outside the repository: `import vitviz` can only find the installed wheel
VITVIZ_OFFLINE=1 PYTHONPATH= "$work/venv/bin/python" - "$repo/README.md" <<'PY'
import re
import sys
from pathlib import Path

import vitviz

installed = Path(vitviz.__file__).resolve()
assert "site-packages" in installed.parts, f"vitviz was imported from {installed}, not from the wheel"
text = Path(sys.argv[1]).read_text()
section = text[text.index("## Use it from a notebook"):]
code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
print(f"running the README's notebook example against {installed.parent}")
exec(compile(code, "README.md", "exec"), {})
PY
