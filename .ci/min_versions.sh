#!/usr/bin/env bash
# Smoke test on the declared minimum versions: every page of the app in AppTest, with streamlit, plotly, timm
# and numpy pinned to the floors pyproject.toml declares. The pinned packages go into a virtual environment
# over this machine's site-packages, so only they are downloaded; torch and the rest are the installed ones.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

pins="$(python - "$repo/pyproject.toml" <<'PY'
import re
import sys
import tomllib

project = tomllib.load(open(sys.argv[1], "rb"))["project"]
declared = project["dependencies"] + project["optional-dependencies"]["app"]
floors = dict(re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec).groups() for spec in declared)
print(" ".join(f"{name}=={floors[name]}" for name in ("streamlit", "plotly", "timm", "numpy")))
PY
)"
echo "minimum versions: $pins"
python -m venv --system-site-packages "$work/venv"
# shellcheck disable=SC2086
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check $pins 2> >(grep -v "is ignored: it is neither" >&2)
"$work/venv/bin/python" -c "import streamlit, plotly, timm, numpy; print('streamlit', streamlit.__version__, '| plotly', plotly.__version__, '| timm', timm.__version__, '| numpy', numpy.__version__)"
cd "$repo"
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests/app/test_app_pages.py -k test_every_page_renders_in_each_language
