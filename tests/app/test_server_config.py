"""The server's settings in ``.streamlit/config.toml``, read by Streamlit's own parser as ``streamlit run`` does."""
from __future__ import annotations

import os
import subprocess
import sys

from tests._apptest import ROOT


def _option(name: str) -> str:
    """``name`` as a server started from the repository reads it (its own process: Streamlit's config is global)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    done = subprocess.run([sys.executable, "-c", f"from streamlit import config; print(config.get_option({name!r}))"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_script_run_is_not_followed_by_a_full_garbage_collection():
    """Streamlit's default collects all garbage after every script run. With torch, timm, Plotly and pandas loaded
    that holds the GIL for ~230 ms, and a rerun's messages still queued wait for it: the walk-through's committed
    click took 352–378 ms instead of 241–265 ms at the median (bench/README.md §17)."""
    assert _option("runner.postScriptGC") == "False"
