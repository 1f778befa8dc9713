"""deploy/: vitviz replicas behind HAProxy, as a class uses them, for real (slow).

``deploy/serve.sh 2`` on free loopback ports with the bundled offline model (servers of its own: the replicas
and HAProxy are what is tested), ten browser sessions (the session's Chromium, ten contexts) uploading their
own photos at once through HAProxy, a replica killed in the middle of the class, six students without a browser
(the class bench's ``--clients protocol``), and Ctrl-C. The configuration, checked without running it, is in
``tests/unit/test_deploy_config.py``.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench._app import ctrl_c_stops
from bench.classroom import (
    ClassImage,
    arm,
    class_images,
    judge,
    open_session,
    outcome,
    pick_upload,
    run_class,
    wait_ready,
)
from tests._apptest import ROOT, bundled_model_shipped

DEPLOY = ROOT / "deploy"
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)
START_TIMEOUT_S = 300
TIMEOUT_MS = 180_000
RESTART_AFTER_S = 20  # long enough that the killed replica is still down while its sessions reload

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Deployment:
    """``deploy/serve.sh 2`` on free loopback ports; its run folder holds the pids, logs and admin socket."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        ports = f"{_free_port()},{_free_port()}"
        env = dict(os.environ, VITVIZ_OFFLINE="1", PYTHON=sys.executable, HAPROXY=HAPROXY)
        self.proc = subprocess.Popen(
            ["bash", str(DEPLOY / "serve.sh"), "-a", "127.0.0.1", "-p", str(self.port), "-r", ports,
             "-d", str(run_dir), "--restart-after", str(RESTART_AFTER_S), "2"],
            env=env, stdout=subprocess.DEVNULL, stderr=(run_dir / "serve.log").open("w"), preexec_fn=ctrl_c_stops)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (run_dir / "haproxy.pid").exists() or self.states().get("r1") is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"deploy/serve.sh did not start:\n{(run_dir / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.3)

    def pid(self, name: str) -> int:
        return int((self.run_dir / f"{name}.pid").read_text())

    def states(self) -> dict[str, str]:
        """HAProxy's view of each replica (``UP``, ``DOWN``, ...), from its admin socket."""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(self.run_dir / "haproxy.sock"))
                sock.sendall(b"show stat\n")
                data = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
        except OSError:
            return {}
        rows = [line.split(",") for line in data.splitlines() if line.startswith("vitviz,r")]
        return {row[1]: row[17].split()[0] for row in rows}  # svname, status

    def wait_for(self, replica: str, state: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.states().get(replica) != state:
            assert time.monotonic() < deadline, f"{replica} never became {state}: {self.states()}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    if HAPROXY is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy)")
    if not bundled_model_shipped():
        pytest.skip("the bundled vitviz-shapes model is not in this tree")
    served = Deployment(tmp_path_factory.mktemp("serve"))
    yield served
    served.stop()


def _upload_together(sessions, images: list[ClassImage]) -> list[str]:
    """Every session uploads its image at one instant; the verdict of each (``'own'`` when it sees its own map)."""
    at_ms = time.time() * 1e3 + 1000 + 50 * len(sessions)
    for session, image in zip(sessions, images):
        arm(session.page, image, at_ms)
    return judge([outcome(s.page, TIMEOUT_MS) for s in sessions], images)


def _answers(session) -> str:
    """Which replica answered each request of the session, where that changed (for a failure's message)."""
    changes = [(url, replica) for k, (url, replica) in enumerate(session.answers)
               if k == 0 or replica != session.answers[k - 1][1]]
    return f"cookie {_cookie(session)}; answers: {changes[:12]}"


def _cookie(session) -> str | None:
    return next((c["value"] for c in session.context.cookies() if c["name"] == "vitviz_replica"), None)


@pytest.fixture(scope="module")
def class_of_ten(deployment, chromium):
    """Ten students open vitviz through HAProxy and upload their own photos at the same moment."""
    sessions = [open_session(chromium, deployment.url, TIMEOUT_MS, wait=False) for _ in range(10)]
    for session in sessions:
        pick_upload(session.page, TIMEOUT_MS)
    images = class_images(10)
    verdicts = _upload_together(sessions, images)
    yield sessions, images, verdicts
    for session in sessions:
        session.context.close()


@pytest.mark.slow
@pytest.mark.browser
def test_ten_sessions_through_haproxy_each_stay_on_one_replica_and_see_their_own_maps(class_of_ten):
    sessions, images, verdicts = class_of_ten
    assert verdicts == ["own"] * 10
    for session, image in zip(sessions, images):
        assert session.page.get_by_text(f"upload: {image.caption}").count() >= 1
        # every answer the session got (page, scripts, health, upload, ...) came from one replica: its cookie's
        assert session.replicas == {_cookie(session)}, _answers(session)
    counts = {name: sum(_cookie(s) == name for s in sessions) for name in ("r1", "r2")}
    assert min(counts.values()) >= 3, f"new sessions go to the less busy replica: {counts}"


@pytest.mark.slow
@pytest.mark.browser
def test_a_replica_killed_mid_class_costs_only_its_own_sessions_a_reload(deployment, chromium, class_of_ten):
    sessions, _, _ = class_of_ten
    victims = [s for s in sessions if _cookie(s) == "r2"]
    survivors = [s for s in sessions if _cookie(s) == "r1"]
    assert victims and survivors
    for i, session in enumerate(sessions):
        session.page.evaluate("(i) => { window.__stillThere = i; }", i)

    os.kill(deployment.pid("replica-2"), signal.SIGKILL)
    deployment.wait_for("r2", "DOWN", timeout_s=30)

    # the survivors carry on in the same page and session: a new photo each, their own map, still on r1
    verdicts = _upload_together(survivors, class_images(len(survivors), first=10))
    assert verdicts == ["own"] * len(survivors)
    for session in survivors:
        assert session.page.evaluate("() => window.__stillThere") == sessions.index(session), "the page reloaded"
        assert session.replicas == {"r1"} and _cookie(session) == "r1", _answers(session)

    # the killed replica's sessions reload, land on the survivor and work again
    for session in victims:
        session.page.reload(wait_until="commit")
    for session in victims:
        session.answers.clear()
        wait_ready(session.page, TIMEOUT_MS)
    verdicts = _upload_together(victims, class_images(len(victims), first=20))
    assert verdicts == ["own"] * len(victims)
    for session in victims:
        assert _cookie(session) == "r1" and session.replicas == {"r1"}, _answers(session)

    # serve.sh starts the killed replica again, and HAProxy sends the next newcomer there (fewest connections)
    deployment.wait_for("r2", "UP", timeout_s=RESTART_AFTER_S + START_TIMEOUT_S)
    newcomer = open_session(chromium, deployment.url, TIMEOUT_MS)
    try:
        assert _upload_together([newcomer], class_images(1, first=30)) == ["own"]
        assert _cookie(newcomer) == "r2" and newcomer.replicas == {"r2"}, _answers(newcomer)
    finally:
        newcomer.context.close()


@pytest.mark.slow
def test_haproxy_refuses_an_upload_over_the_limit_before_a_replica_sees_it(deployment):
    limit = int(re.search(r"content-length\) gt (\d+)", HAPROXY_CFG.read_text()).group(1))
    answers = {}
    for size in (limit + 1, 1000):
        connection = http.client.HTTPConnection("127.0.0.1", deployment.port, timeout=30)
        connection.putrequest("PUT", "/_stcore/upload_file/session/file")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()  # no body: HAProxy decides on the header
        if size < limit:
            connection.send(b"x" * size)
        response = connection.getresponse()
        answers[size] = (response.status, response.getheader("X-Vitviz-Replica"))
        connection.close()
    assert answers[limit + 1] == (413, None), "refused by HAProxy itself, no replica involved"
    assert answers[1000][0] != 413 and answers[1000][1] in ("r1", "r2"), "a small body reaches a replica"


@pytest.mark.slow
def test_students_without_a_browser_keep_to_their_replica_and_get_their_own_maps(deployment):
    """The class bench's client with no browser (``bench/_student.py``, ``--clients protocol``) through HAProxy:
    it speaks Streamlit's protocol as a page does (the XSRF and replica cookies, the upload box's three
    messages), so each of its sessions stays on one replica, is answered, and sees its own photo's map."""
    for replica in ("r1", "r2"):  # the previous test may have left r2 restarting
        deployment.wait_for(replica, "UP", timeout_s=RESTART_AFTER_S + START_TIMEOUT_S)
    images = class_images(6, first=40)
    run = run_class(None, deployment.url, images, lambda: [], TIMEOUT_MS / 1e3, pages=0)
    rows = run["results"]
    assert [row["verdict"] for row in rows] == ["own"] * len(images), [row.get("error") for row in rows]
    for row in rows:
        assert len(row["replicas"]) == 1 and row["replicas"][0] in ("r1", "r2"), row["replicas"]
        assert row["t0"] < row["upload"][0] < row["upload"][1] < row["t1"]
        assert not row["notices"] or row["t_informed"] <= row["t1"]


@pytest.mark.slow
def test_ctrl_c_stops_haproxy_and_every_replica(deployment):
    pids = [deployment.pid(name) for name in ("haproxy", "replica-1", "replica-2")]
    deployment.proc.send_signal(signal.SIGINT)
    assert deployment.proc.wait(timeout=60) == 130
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), pid
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", deployment.port), timeout=2).close()
