"""Run the vitviz app on a random-weight ViT (no network, no app changes) for the app benchmarks.

The app loads catalogue models through ``vitviz.models.load_model``, which, when the hub is unreachable,
uses weights already in the local Hugging Face cache. So the benchmarks write *random* weights for the
catalogue model into a private cache folder (``HF_HUB_CACHE``) and run the app offline
(``VITVIZ_OFFLINE=1``): the app's own loading path (``source='hub-cache'``) then builds the real architecture
with those weights, in AppTest and under ``streamlit run`` alike.

:class:`Servers` starts what a class bench drives: one ``streamlit run app.py``, or ``deploy/serve.sh K`` (HAProxy
in front of K replicas).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench._timing import REPO

__all__ = ["APP", "BENCH_CACHE", "Servers", "app_env", "ctrl_c_stops", "free_port", "random_hub_weights",
           "start_server", "use_random_hub"]

APP = REPO / "app.py"
BENCH_CACHE = Path(os.environ.get("VITVIZ_BENCH_CACHE", "/tmp/vitviz-bench-hub"))
_FAKE_COMMIT = "0" * 40


def random_hub_weights(timm_name: str, cache: Path = BENCH_CACHE, seed: int = 0) -> Path:
    """Write seeded random weights for ``timm_name`` (a catalogue name with its pretrained tag) where the
    Hugging Face cache would keep the downloaded file; reuse them when already there."""
    from timm.models import get_pretrained_cfg

    repo = get_pretrained_cfg(timm_name).hf_hub_id
    folder = cache / ("models--" + repo.replace("/", "--"))
    target = folder / "snapshots" / _FAKE_COMMIT / "model.safetensors"
    if not target.is_file():
        import timm
        import torch
        from safetensors.torch import save_file

        torch.manual_seed(seed)
        model = timm.create_model(timm_name.split(".")[0], pretrained=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        tmp.rename(target)
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(_FAKE_COMMIT)
    return target


def app_env(cache: Path = BENCH_CACHE, threads: int | None = 1) -> dict[str, str]:
    """Environment for an offline app that finds the random weights in ``cache``."""
    env = {"VITVIZ_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def use_random_hub(timm_names: list[str], cache: Path = BENCH_CACHE) -> None:
    """For an in-process app (AppTest): write the weights and point this process at them.

    Must run before ``huggingface_hub`` is imported (it reads ``HF_HUB_CACHE`` once).
    """
    if "huggingface_hub" in sys.modules and os.environ.get("HF_HUB_CACHE") != str(cache):
        raise RuntimeError("huggingface_hub was imported before the benchmark cache was set")
    os.environ.update(app_env(cache, threads=None))
    for name in timm_names:
        random_hub_weights(name, cache)



def ctrl_c_stops() -> None:
    """``preexec_fn`` of a server stopped with SIGINT (what Ctrl-C does): the child gets SIGINT's default action.

    A process started in the background of a non-interactive shell (``cmd &``, ``nohup``) ignores SIGINT, and its
    children inherit that; bash cannot trap a signal ignored when it started, so ``deploy/serve.sh`` would never
    run its Ctrl-C clean-up (seen when CI was started with ``nohup bash .ci/run &``).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, env: dict[str, str], log: Path, timeout_s: float = 240.0,
                 app_dir: Path = REPO, wire: bool = False) -> subprocess.Popen:
    """``streamlit run app.py`` of ``app_dir`` (this tree by default) on ``port``; returns once its health endpoint
    answers. With ``wire``, through ``bench/_wire.py`` (its websocket and event loop traced)."""
    streamlit = [str(REPO / "bench" / "_wire.py")] if wire else ["-m", "streamlit"]
    cmd = [sys.executable, *streamlit, "run", str(Path(app_dir) / APP.name), "--server.headless", "true",
           "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=app_dir, env={**os.environ, **env}, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise TimeoutError(f"streamlit did not answer on port {port} within {timeout_s:.0f} s; see {log}")


class Servers:
    """The app this script starts: one ``streamlit run app.py``, or ``deploy/serve.sh K`` (HAProxy + K)."""

    def __init__(self, replicas: int, env: dict[str, str], app_dir: Path = REPO, wire: bool = False) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="vitviz-classroom-"))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        if replicas == 1:
            self.proc = start_server(port, env, self.run_dir / "streamlit.log", app_dir=app_dir, wire=wire)
            return
        ports = ",".join(str(free_port()) for _ in range(replicas))
        self.proc = subprocess.Popen(
            ["bash", str(REPO / "deploy" / "serve.sh"), "-a", "127.0.0.1", "-p", str(port), "-r", ports,
             "-d", str(self.run_dir), str(replicas)],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=(self.run_dir / "serve.log").open("w"),
            preexec_fn=ctrl_c_stops)
        deadline = time.monotonic() + 600
        while not _healthy(self.url) or not (self.run_dir / "haproxy.pid").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"deploy/serve.sh did not start; see {self.run_dir}")
            time.sleep(0.5)

    def pids(self) -> list[int]:
        """The server processes now: streamlit, or HAProxy and each replica's streamlit."""
        if not (self.run_dir / "haproxy.pid").exists():
            return [self.proc.pid]
        files = [self.run_dir / "haproxy.pid", *sorted(self.run_dir.glob("replica-*.pid"))]
        return [int(f.read_text()) for f in files]

    def logs(self) -> list[Path]:
        """The servers' logs: streamlit's, or each replica's (``deploy/serve.sh``)."""
        return sorted([*self.run_dir.glob("streamlit.log"), *self.run_dir.glob("replica-*.log")])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # serve.sh: what Ctrl-C does; streamlit: a clean shutdown
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _healthy(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url + "_stcore/health", timeout=2) as answer:
        return answer.status == 200
    return False
