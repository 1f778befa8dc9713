"""deploy/: the configuration, checked where it can be without running it (HAProxy's own parser, the compose
file against the HAProxy side, the upload limit against Streamlit's), two processes sharing one Hugging Face
cache that download a file once, and the class bench's own judge (``bench/classroom.py``). The replicas behind
HAProxy with a class of browser sessions: ``tests/browser/test_deploy.py``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

from bench.classroom import ClassImage, cpu_seconds, judge
from tests._apptest import ROOT
from tests._localhub import LocalHub

DEPLOY = ROOT / "deploy"
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)

needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (apt-get install haproxy)")


# ------------------------------------------------------------------------------------------ configuration


@needs_haproxy
def test_haproxy_accepts_the_compose_configuration():
    servers = DEPLOY / "haproxy" / "servers-compose.cfg"
    done = subprocess.run([HAPROXY, "-c", "-f", str(HAPROXY_CFG), "-f", str(servers)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr


def test_haproxy_refuses_exactly_the_uploads_a_replica_would_refuse():
    """Streamlit caps an upload's body at server.maxUploadSize MiB plus 1 MiB of multipart framing."""
    limits = re.findall(r"req\.hdr_val\(content-length\) gt (\d+)", HAPROXY_CFG.read_text())
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert limits == [str((config["server"]["maxUploadSize"] + 1) * 2**20)]


def test_the_compose_file_wires_the_replicas_haproxy_and_one_shared_cache():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    app, proxy = compose["services"]["vitviz"], compose["services"]["haproxy"]
    # one named volume holds the Hugging Face cache of every replica, where HF_HOME points
    cache = app["environment"]["HF_HOME"]
    volume, target = next(v.split(":")[:2] for v in app["volumes"] if v.split(":")[1] == cache)
    assert volume in compose["volumes"] and app["deploy"]["replicas"] >= 2
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"HF_HOME={cache}" in dockerfile and f"chown vitviz:vitviz {cache}" in dockerfile
    # HAProxy reads the shared file and the compose servers file, and finds the replicas on their port
    files = [proxy["command"][i + 1] for i, arg in enumerate(proxy["command"]) if arg == "-f"]
    mount_source, mount_target = proxy["volumes"][0].split(":")[:2]
    assert [Path(f).relative_to(mount_target) for f in files] == [Path("haproxy.cfg"), Path("servers-compose.cfg")]
    assert all((DEPLOY / mount_source / Path(f).relative_to(mount_target)).is_file() for f in files)
    replica_port = re.search(r"STREAMLIT_SERVER_PORT=(\d+)", dockerfile).group(1)
    servers = (DEPLOY / "haproxy" / "servers-compose.cfg").read_text()
    template = re.search(r"server-template \S+ \S+ (\w+):(\d+)", servers)
    assert template.groups() == ("vitviz", replica_port) and app["expose"] == [replica_port]
    bind_port = proxy["environment"]["VITVIZ_BIND"].rsplit(":", 1)[1]
    assert any(p.endswith(f":{bind_port}") for p in proxy["ports"])


def test_docker_compose_accepts_the_compose_file():
    cli = [shutil.which("docker"), "compose"] if shutil.which("docker") else None
    if cli and subprocess.run([*cli, "version"], capture_output=True).returncode != 0:
        cli = None
    cli = cli or ([shutil.which("docker-compose")] if shutil.which("docker-compose") else None)
    if cli is None:
        pytest.skip("no docker compose client here (the compose file's wiring is checked without it above)")
    done = subprocess.run([*cli, "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_two_replicas_fetching_the_same_file_at_once_download_it_once(tmp_path):
    """Replicas share HF_HOME: huggingface_hub's file lock makes the second wait for the first's file."""
    weights = os.urandom(2 * 2**20)
    fetch = "import sys; from vitviz import hub; print(hub.download('org/weights', 'model.safetensors'))"
    with LocalHub(throttle_s=0.08) as local:  # 32 chunks: about 2.5 s, so the second starts mid-download
        local.add("org/weights", "model.safetensors", weights)
        env = {k: v for k, v in os.environ.items() if k not in ("VITVIZ_OFFLINE", "HF_HUB_OFFLINE", "HF_HUB_CACHE")}
        env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=local.endpoint, PYTHONPATH=str(ROOT))
        replicas = [subprocess.Popen([sys.executable, "-c", fetch], env=env, stdout=subprocess.PIPE, text=True)]
        deadline = time.monotonic() + 60
        while not local.seen("GET", "cdn") and time.monotonic() < deadline:
            time.sleep(0.05)
        replicas.append(subprocess.Popen([sys.executable, "-c", fetch], env=env, stdout=subprocess.PIPE, text=True))
        assert replicas[0].poll() is None, "the first replica finished before the second started: no overlap"
        paths = [Path(r.communicate(timeout=120)[0].strip()) for r in replicas]
        assert [r.returncode for r in replicas] == [0, 0]
        assert len(local.seen("GET", "cdn")) == 1, "the file's bytes were sent once"
    assert paths[0] == paths[1] and paths[0].read_bytes() == weights
    assert not list((tmp_path / "hf").rglob("*.incomplete"))


# ------------------------------------------------------------------------------------------ the class bench's judge


def _seen(image: ClassImage, heat: str, caption: str | None = None) -> dict:
    """A page's probe that drew a map of ``image``'s size with heatmap ``heat`` under ``caption``."""
    return {"t0": 0.0, "t1": 1.0, "shown": {"width": image.width, "height": image.height, "heat": heat,
                                            "captions": [f"upload: {caption or image.caption}"]}}


def test_the_class_judge_names_every_kind_of_mix_up():
    """bench/classroom.py's check, which the class below relies on, on hand-made probes."""
    images = [ClassImage(f"student-{k:02d}.png", b"", 300 + 6 * k, 220 + 4 * k) for k in range(6)]
    probes = [
        _seen(images[0], "a"),                          # its own map
        _seen(images[0], "b"),                          # session 0's photo and size
        _seen(images[2], "c", caption=images[3].caption),  # its size, another's caption
        _seen(images[3], "a"),                          # its size and caption, session 0's heatmap
        {"t0": 0.0, "t1": None, "shown": None, "error": "no map: TimeoutError"},
        {"t0": 0.0, "t1": 1.0, "shown": {"width": 999, "height": 9, "heat": "f", "captions": []}},
    ]
    verdicts = judge(probes, images)
    assert verdicts[1:] == [
        "mix-up: shows student-00.png",
        f"mix-up: the caption does not name {images[2].caption} (['upload: {images[3].caption}'])",
        "mix-up: the same heatmap as student-00.png",
        "no map: TimeoutError",
        "unrecognised: a 999×9 map",
    ]
    assert verdicts[0] == "mix-up: the same heatmap as student-03.png", "a shared heatmap condemns both"
    assert judge(probes[:1], images[:1]) == ["own"]


def test_server_cpu_time_is_read_as_the_kernel_counts_it():
    before = os.times()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn some CPU in this process
        pass
    after = os.times()
    counted = cpu_seconds([os.getpid()])
    assert abs(counted - (after.user + after.system)) <= 0.05  # one clock tick is 0.01 s
    assert counted - (before.user + before.system) >= 0.25
    assert cpu_seconds([2**22 + 1]) == 0  # a process that is gone
