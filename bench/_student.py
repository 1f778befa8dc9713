"""Students without a browser: sessions spoken in Streamlit's own protocol, for the class bench
(``bench/classroom.py --clients protocol``).

On this machine a class's 30 Chromium pages run on the server's own two cores, so a class measured with real
browsers holds the pages' work as well as the server's, which in a classroom runs on the students' computers.
This client does only what a page does on the wire, with Streamlit's own message classes (``streamlit.proto``):

1. ``GET /_stcore/health`` for its cookies, as the page does (Streamlit's XSRF cookie; behind HAProxy the one
   that keeps the session on its replica), sent with everything that follows;
2. the websocket ``/_stcore/stream`` and a ``rerun_script`` for the Overview with ``?source=Upload`` (what the
   page's "Upload" button sets), until the run ends with the upload box drawn;
3. at the class's instant (the upload event): a ``file_urls_request``, the ``PUT`` of the photo to the URL the
   server answers, and the ``rerun_script`` with the upload box's new state (``file_uploader_state_value``), as the
   upload box does;
4. then it reads every message until the Overview's rollout map is sent.

It records what ``bench/_classroom_probe.js`` records in a page (``t0``, ``t1``, ``t_informed``, ``notices``,
``notice_at``, ``shown``, ``upload``, ``ws``), with one difference: a time is when the message arrived here, not
the animation frame that drew it (a page on the student's computer adds its own drawing). The rollout map's size
is its x and y axes' ranges (the photo's pixels), its heatmap a hash of its values, its captions the page's caption
texts: :func:`bench.classroom.judge` judges them as it does a page's. :class:`Crowd` runs a class of them on an
event loop of its own, beside the bench's browser pages.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench._wire import HOURGLASS

__all__ = ["ROLLOUT_KEY", "UPLOAD_KEY", "Crowd", "Student", "figure_shown", "open_student", "upload_and_watch"]

ROLLOUT_KEY = "fig-overview-rollout"
"""The key of the container the Overview draws its rollout map in (``vitviz_app.plotting.show_figure``)."""
UPLOAD_KEY = "upload"
"""The key of the sidebar's upload box (``vitviz_app.sidebar``)."""
_XSRF = "_streamlit_xsrf"
_REPLICA = "x-vitviz-replica"  # deploy/haproxy/haproxy.cfg adds it to every answer


@dataclass
class Student:
    """One session: its websocket, what the server told it, and the probe (epoch ms, as a page's)."""

    url: str
    ws: object
    cookies: dict
    session_id: str = ""
    page_hash: str = ""
    query: str = ""
    uploader: str = ""
    blocks: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    urls: asyncio.Future | None = None
    captions: list = field(default_factory=list)
    mapped: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task | None = None
    sidebar: list = field(default_factory=list)
    replicas: set = field(default_factory=set)


def _now_ms() -> float:
    return time.time() * 1e3


def _cookies(url: str) -> dict[str, str]:
    """The cookies the server's health endpoint sets, as a browser keeps them: Streamlit's XSRF cookie and, behind
    HAProxy (``deploy/``), the one naming the session's replica."""
    with urllib.request.urlopen(url + "_stcore/health", timeout=30) as answer:
        pairs = (header.split(";", 1)[0].partition("=") for header in answer.headers.get_all("Set-Cookie") or [])
        return {name.strip(): value for name, _, value in pairs}


def _rerun(student: Student, widgets: list | None = None) -> bytes:
    from streamlit.proto.BackMsg_pb2 import BackMsg

    msg = BackMsg()
    state = msg.rerun_script
    state.query_string = student.query
    state.page_script_hash = student.page_hash
    state.context_info.timezone = "UTC"
    state.context_info.locale = "en-US"
    state.context_info.url = student.url
    for widget in widgets or []:
        state.widget_states.widgets.append(widget)
    return msg.SerializeToString()


def figure_shown(spec: str, captions: list[str]) -> dict | None:
    """What a page's probe reads of a drawn rollout figure, from its Plotly JSON: the photo's width and height
    (the largest ends of the x and y axes' ranges, rounded), a hash of its heatmap's values, and ``captions``;
    None for a figure without a heatmap or axis ranges."""
    figure = json.loads(spec)
    layout = figure.get("layout") or {}
    heat = next((t for t in figure.get("data") or [] if t.get("type") == "heatmap"), None)
    ranges = [(layout.get(axis) or {}).get("range") for axis in ("xaxis", "yaxis")]
    if heat is None or heat.get("z") is None or not all(ranges):
        return None
    z = json.dumps(heat["z"], sort_keys=True)
    return {"width": round(max(ranges[0])), "height": round(max(ranges[1])),
            "heat": hashlib.blake2b(z.encode(), digest_size=4).hexdigest(), "captions": list(captions)}


def _handle(student: Student, data: bytes, at: float) -> None:
    """Read one ForwardMsg that arrived at ``at`` (epoch ms) into ``student``."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = ForwardMsg()
    msg.ParseFromString(data)
    probe = student.probe
    if probe.get("t0") is not None and len(probe["ws"]["got"]) < 3000:
        probe["ws"]["got"].append(at)
    kind = msg.WhichOneof("type")
    if kind == "new_session":
        student.session_id = msg.new_session.initialize.session_id or student.session_id
        student.page_hash = msg.new_session.page_script_hash or student.page_hash
    elif kind == "navigation":
        student.page_hash = msg.navigation.page_script_hash or student.page_hash
    elif kind == "page_info_changed":
        student.query = msg.page_info_changed.query_string
    elif kind == "file_urls_response" and student.urls is not None and not student.urls.done():
        student.urls.set_result(msg.file_urls_response)
    elif kind == "script_finished":
        student.finished.set()
    elif kind == "delta":
        _delta(student, msg, at)


def _delta(student: Student, msg, at: float) -> None:
    delta, path = msg.delta, tuple(msg.metadata.delta_path)
    probe = student.probe
    if delta.WhichOneof("type") == "add_block":
        student.blocks[path] = delta.add_block.id
        return
    if delta.WhichOneof("type") != "new_element":
        return
    element = delta.new_element
    kind = element.WhichOneof("type")
    if kind == "markdown" and path[:1] == (1,) and len(student.sidebar) < 200:
        student.sidebar.append(element.markdown.body)
    if kind == "file_uploader" and element.file_uploader.id.endswith(f"-{UPLOAD_KEY}"):
        student.uploader = element.file_uploader.id
    if probe.get("t0") is None or probe.get("t1") is not None:
        return
    if kind == "alert" and HOURGLASS in element.alert.icon:
        text = element.alert.body.strip()
        if probe["t_informed"] is None:
            probe["t_informed"] = at
        if len(probe["notices"]) < 40 and (not probe["notices"] or probe["notices"][-1] != text):
            probe["notices"].append(text)
            probe["notice_at"].append(at)
    elif kind == "markdown" and path[:1] == (0,) and element.markdown.element_type == element.markdown.CAPTION:
        student.captions.append(element.markdown.body)
    elif kind == "imgs" and path[:1] == (0,):
        student.captions += [image.caption for image in element.imgs.imgs if image.caption]
    elif kind == "plotly_chart" and any(str(student.blocks.get(path[:k], "")).endswith(f"-{ROLLOUT_KEY}")
                                        for k in range(1, len(path))):
        shown = figure_shown(element.plotly_chart.spec, student.captions)
        if shown is not None:
            probe.update(t1=at, shown=shown)
            student.mapped.set()


async def _read(student: Student) -> None:
    """Read the session's messages until its websocket closes."""
    import websockets

    try:
        async for data in student.ws:
            _handle(student, data, _now_ms())
    except websockets.ConnectionClosed:
        pass


async def open_student(url: str, query: str, timeout_s: float) -> Student:
    """Connect to the vitviz at ``url`` (ending in ``/``) as a page does, run the Overview with ``query`` (e.g.
    ``source=Upload&model=...``), and return once that run has ended with the upload box drawn."""
    import websockets

    cookies = await asyncio.to_thread(_cookies, url)
    parts = urlsplit(url)
    ws = await websockets.connect(
        f"ws://{parts.netloc}{parts.path}_stcore/stream", subprotocols=["streamlit", cookies.get(_XSRF) or "-"],
        additional_headers={"Origin": f"{parts.scheme}://{parts.netloc}", **_cookie_header(cookies)},
        max_size=None, open_timeout=timeout_s)
    student = Student(url, ws, cookies, query=query, probe={"t0": None})
    student.replicas.add(ws.response.headers.get(_REPLICA))
    student.reader = asyncio.ensure_future(_read(student))
    await ws.send(_rerun(student))
    while not student.uploader:
        student.finished.clear()
        await asyncio.wait_for(student.finished.wait(), timeout_s)
    return student


def _cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())} if cookies else {}


def _put(url: str, cookies: dict[str, str], name: str, data: bytes) -> str | None:
    """The upload box's ``PUT``: the photo as one multipart form field ``file``."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", **_cookie_header(cookies)}
    if cookies.get(_XSRF):
        headers["X-Xsrftoken"] = cookies[_XSRF]
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=120) as answer:
        answer.read()
        return answer.headers.get(_REPLICA)


async def upload_and_watch(student: Student, name: str, data: bytes, at_ms: float, timeout_s: float) -> dict:
    """At epoch ``at_ms``, upload the photo ``name`` as the upload box does, then read the session's messages until
    its rollout map arrives (or ``timeout_s`` passes). Returns the probe (see the module's docstring)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    await asyncio.sleep(max(0.0, at_ms - _now_ms()) / 1e3)
    probe = student.probe
    probe.update(name=name, t0=_now_ms(), t1=None, t_informed=None, notices=[], notice_at=[], shown=None,
                 upload=None, error=None, ws={"sent": [], "got": []})
    student.captions = []
    student.mapped.clear()
    try:
        student.urls = asyncio.get_running_loop().create_future()
        ask = BackMsg()
        ask.file_urls_request.request_id = uuid.uuid4().hex
        ask.file_urls_request.file_names.append(name)
        ask.file_urls_request.session_id = student.session_id
        probe["ws"]["sent"].append(_now_ms())
        await student.ws.send(ask.SerializeToString())
        urls = (await asyncio.wait_for(student.urls, timeout_s)).file_urls[0]
        parts = urlsplit(student.url)
        target = urls.upload_url if "://" in urls.upload_url else f"{parts.scheme}://{parts.netloc}{urls.upload_url}"
        started = _now_ms()
        student.replicas.add(await asyncio.to_thread(_put, target, student.cookies, name, data))
        probe["upload"] = [started, _now_ms()]
        widget = WidgetState(id=student.uploader)
        info = widget.file_uploader_state_value.uploaded_file_info.add()
        info.file_id, info.name, info.size = urls.file_id, name, len(data)
        info.file_urls.CopyFrom(urls)
        probe["ws"]["sent"].append(_now_ms())
        await student.ws.send(_rerun(student, [widget]))
        mapped = asyncio.ensure_future(student.mapped.wait())
        await asyncio.wait([mapped, student.reader], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        mapped.cancel()
        if probe["t1"] is None:
            probe["error"] = "no map: " + ("the connection closed" if student.reader.done() else "TimeoutError")
    except (OSError, asyncio.TimeoutError, IndexError) as exc:
        probe["error"] = f"no map: {type(exc).__name__}: {exc}"
    return probe


class Crowd:
    """Students without a browser, each with its own photo, on an event loop of their own (a thread), so that a
    class can mix them with browser pages driven from the main thread (``bench/classroom.py --pages``).

    Made, they have connected and run the Overview with the upload box; :meth:`upload` starts every upload at one
    instant; :meth:`close` hangs up."""

    def __init__(self, url: str, images: list, timeout_s: float) -> None:
        self.images, self.timeout_s = images, timeout_s
        self.loop = asyncio.new_event_loop()
        # one thread per student for the uploads' PUTs, as each page sends its own at once (asyncio's default
        # pool has min(32, cores + 4) threads, which would queue them here)
        self.loop.set_default_executor(ThreadPoolExecutor(max_workers=max(1, len(images))))
        self.thread = threading.Thread(target=self.loop.run_forever, name="vitviz-crowd", daemon=True)
        self.thread.start()
        base, _, query = url.partition("?")
        query = "&".join(part for part in (query, "source=Upload") if part)

        async def connect() -> list[Student]:
            return list(await asyncio.gather(*(open_student(base, query, timeout_s) for _ in images)))

        self.students: list[Student] = []
        self.students = self._run(connect()).result()

    def _run(self, coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def sidebar(self) -> str:
        """The markdown of the first student's sidebar, one text per line (what a page's sidebar shows, unrendered)."""
        return "\n".join(self.students[0].sidebar) if self.students else ""

    def upload(self, at_ms: float) -> concurrent.futures.Future:
        """Every student uploads its photo at epoch ``at_ms``; the future's result is their probes, in order, each
        with the replicas that answered it (``replicas``)."""

        async def together() -> list[dict]:
            probes = await asyncio.gather(*(upload_and_watch(student, image.name, image.data, at_ms, self.timeout_s)
                                            for student, image in zip(self.students, self.images)))
            return [{**probe, "replicas": sorted(r for r in student.replicas if r)}
                    for probe, student in zip(probes, self.students)]

        return self._run(together())

    def close(self) -> None:
        async def hang_up() -> None:
            await asyncio.gather(*(student.ws.close() for student in self.students), return_exceptions=True)

        with contextlib.suppress(Exception):
            self._run(hang_up()).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
