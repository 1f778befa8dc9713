"""The server's side of a class's wait, as the websocket sees it: ``streamlit run`` with trace hooks, for the class
bench only (``bench/classroom.py --trace``).

``python bench/_wire.py run app.py [streamlit options]`` is ``streamlit run`` with hooks in Streamlit's runtime
and its web server, installed before it starts, so they work for any vitviz checkout (``--app``), old ones
included. Each writes a line in the format of ``vitviz_app.trace`` (``vitviz-trace <epoch s> <thread CPU s>
<session> <step> [key=value ...]``) to the server's log, which ``bench/_trace.py`` reads:

* ``ws-in type=...``: a message from a page reached its session (``Runtime.handle_backmsg``, on the event loop):
  ``file_urls_request`` (the upload box asks where to send the file), ``rerun_script`` (the page's rerun after it);
* ``ws-out type=...``: a message to a page is handed to its websocket (``Runtime._send_message``, the event loop's
  flush): ``file_urls_response``, ``new_session`` (a run started), ``notice`` (the first delta with the waiting
  notice, ``vitviz_app.waiting``'s hourglass), ``script_finished``;
* ``upload-head`` and ``upload-body``: an upload request reached the app (its headers read, the ASGI app called)
  and its body's last bytes arrived (Starlette's ``receive``), both on the event loop; the session is the upload
  path's;
* ``upload-in``: an uploaded file is stored for its session (``UploadedFileManager.add_file``);
* ``lag max_ms=... mean_ms=... n=...``: how late the event loop woke from a 10 ms sleep, per half second: the
  time any message waits before the server even reads it;
* ``stall ms=... at=... cpu=...``: an event loop that has not woken for over 100 ms: where its thread stood, and
  which threads of the process used the CPU meanwhile (``name:ms``, from ``/proc/self/task``);
* ``gc gen=... ms=... collected=...``: a garbage collection of over 10 ms (it holds the GIL: every thread waits).

Nothing in the app changes; without this launcher nothing of it runs.
"""
from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from pathlib import Path

__all__ = ["GC_MS", "HOURGLASS", "LAG_INTERVAL_S", "LAG_WINDOW_S", "STALL_S", "UPLOAD_PATH", "WATCHED_IN", "install",
           "lag_probe", "main", "outgoing", "time_collections", "upload_session", "watch_stalls", "write"]

WATCHED_IN = ("file_urls_request", "rerun_script")
"""The pages' messages whose arrival is logged."""
LAG_INTERVAL_S = 0.01
LAG_WINDOW_S = 0.5
STALL_S = 0.1
GC_MS = 10.0
UPLOAD_PATH = "/_stcore/upload_file/"
"""Streamlit's upload route: ``PUT <UPLOAD_PATH><session id>/<file id>``."""
HOURGLASS = "hourglass"
"""What the waiting notice's icon holds (``vitviz_app.waiting.ICON``: ``:material/hourglass_top:``)."""


def write(session: str, step: str, **detail: object) -> None:
    """One trace line on stderr (the server's log), like ``vitviz_app.trace.mark``."""
    words = " ".join(f"{key}={value}" for key, value in detail.items())
    sys.stderr.write(f"vitviz-trace {time.time():.4f} {time.thread_time():.4f} {session} {step} {words}\n")
    sys.stderr.flush()


def outgoing(msg) -> str | None:
    """Which watched kind of ForwardMsg ``msg`` is (``file_urls_response``, ``new_session``, ``script_finished``,
    ``notice``), or None for the others."""
    kind = msg.WhichOneof("type")
    if kind in ("file_urls_response", "new_session", "script_finished"):
        return kind
    if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
        element = msg.delta.new_element
        if element.WhichOneof("type") == "alert" and HOURGLASS in element.alert.icon:
            return "notice"
    return None


def upload_session(scope: dict) -> str | None:
    """The session of an ASGI request when it is an upload (``PUT`` on :data:`UPLOAD_PATH`), else None."""
    if scope.get("type") != "http" or scope.get("method") != "PUT":
        return None
    path = scope.get("path", "")
    at = path.find(UPLOAD_PATH)
    if at < 0:
        return None
    session = path[at + len(UPLOAD_PATH):].split("/", 1)[0]
    return session or None


_tick = {"at": 0.0, "thread": 0}  # the lag probe's latest wake and the event loop's thread


async def lag_probe(interval_s: float = LAG_INTERVAL_S, window_s: float = LAG_WINDOW_S) -> None:
    """Sleep ``interval_s`` over and over and log, per ``window_s``, how much later than asked the loop woke."""
    late: list[float] = []
    window_end = time.monotonic() + window_s
    _tick["thread"] = threading.get_ident()
    while True:
        asked = time.monotonic() + interval_s
        await asyncio.sleep(interval_s)
        now = _tick["at"] = time.monotonic()
        late.append(max(0.0, now - asked))
        if now >= window_end:
            write("-", "lag", max_ms=f"{max(late) * 1e3:.1f}", mean_ms=f"{sum(late) / len(late) * 1e3:.1f}",
                  n=len(late))
            late, window_end = [], now + window_s


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process (native id → user + system), from ``/proc/self/task``."""
    ticks, found = os.sysconf("SC_CLK_TCK"), {}
    for task in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def _where(ident: int) -> str:
    """The innermost frames of thread ``ident`` as one word (``file:line:function>...``)."""
    frame, parts = sys._current_frames().get(ident), []
    while frame is not None and len(parts) < 4:
        parts.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}:{frame.f_code.co_name}")
        frame = frame.f_back
    return ">".join(parts) or "-"


def watch_stalls(stall_s: float = STALL_S, every_s: float = 0.02) -> None:
    """Forever: when the event loop has not woken for ``stall_s``, log where its thread stands and, once it wakes,
    how long it stalled and which threads used the CPU meanwhile (a daemon thread's work)."""
    while True:
        time.sleep(every_s)
        last = _tick["at"]
        if not last or time.monotonic() - last < stall_s:
            continue
        cpu, at = _thread_cpu(), _where(_tick["thread"])
        while _tick["at"] == last:
            time.sleep(every_s)
        after, names = _thread_cpu(), {t.native_id: t.name for t in threading.enumerate()}
        used = sorted(((after[k] - cpu.get(k, 0.0), k) for k in after), reverse=True)
        words = ",".join(f"{'_'.join(names.get(k, str(k)).split())}:{seconds * 1e3:.0f}"
                         for seconds, k in used[:5] if seconds > 0)
        write("-", "stall", ms=f"{(_tick['at'] - last) * 1e3:.0f}", at=at, cpu=words or "-")


def time_collections(least_ms: float = GC_MS) -> None:
    """Log every garbage collection that takes ``least_ms`` or more (``gc.callbacks``)."""
    started = {}

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started["at"] = time.perf_counter()
        elif "at" in started:
            ms = (time.perf_counter() - started.pop("at")) * 1e3
            if ms >= least_ms:
                write("-", "gc", gen=info.get("generation"), ms=f"{ms:.0f}", collected=info.get("collected"))

    gc.callbacks.append(callback)


def install() -> None:
    """Wrap Streamlit's runtime so that it logs the lines above (idempotent)."""
    from starlette.applications import Starlette
    from streamlit.runtime import memory_uploaded_file_manager as uploads
    from streamlit.runtime.runtime import Runtime

    if getattr(Runtime, "_vitviz_wire", False):
        return
    Runtime._vitviz_wire = True
    time_collections()
    handle, send, loop = Runtime.handle_backmsg, Runtime._send_message, Runtime._loop_coroutine
    add_file = uploads.MemoryUploadedFileManager.add_file
    asgi = Starlette.__call__

    def handle_backmsg(self, session_id, msg, *args, **kwargs):
        kind = msg.WhichOneof("type")
        if kind in WATCHED_IN:
            write(session_id, "ws-in", type=kind)
        return handle(self, session_id, msg, *args, **kwargs)

    def send_message(self, session_info, msg):
        kind = outgoing(msg)
        if kind is not None:
            write(session_info.session.id, "ws-out", type=kind)
        return send(self, session_info, msg)

    async def loop_coroutine(self):
        probe = asyncio.get_running_loop().create_task(lag_probe(), name="vitviz-lag-probe")
        threading.Thread(target=watch_stalls, name="vitviz-stall-watch", daemon=True).start()
        try:
            return await loop(self)
        finally:
            probe.cancel()

    def add_file_logged(self, session_id, file):
        write(session_id, "upload-in")
        return add_file(self, session_id, file)

    async def asgi_logged(self, scope, receive, send):
        session = upload_session(scope)
        if session is None:
            return await asgi(self, scope, receive, send)
        write(session, "upload-head")

        async def receive_logged():
            message = await receive()
            if message.get("type") == "http.request" and not message.get("more_body", False):
                write(session, "upload-body")
            return message

        return await asgi(self, scope, receive_logged, send)

    Runtime.handle_backmsg, Runtime._send_message, Runtime._loop_coroutine = handle_backmsg, send_message, \
        loop_coroutine
    uploads.MemoryUploadedFileManager.add_file = add_file_logged
    Starlette.__call__ = asgi_logged


def main(argv: list[str]) -> None:
    """``streamlit <argv>`` with the hooks installed."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(here)]  # bench/ shadows no app module
    install()
    from streamlit.web.cli import main as streamlit

    sys.argv = ["streamlit", *argv]
    streamlit()


if __name__ == "__main__":
    main(sys.argv[1:])
