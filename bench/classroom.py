"""A class at once: N browser sessions each upload their own photo at the same moment; how long until each
one sees its own map, whether anyone sees someone else's, and what the server spent per upload.

One concept in one file (about 500 lines; the trace's reading is in ``bench/_trace.py``, the page probe in
``bench/_classroom_probe.js``): one class's run, from the sessions' start to the report.

Drives N real Chromium sessions (Playwright, Debian's ``/usr/bin/chromium``; one browser, one context per
student, so no two share a cookie) against any vitviz URL: one ``streamlit run app.py``, or HAProxy in front
of several (``deploy/``). Without ``--url`` it starts the server itself: ``--replicas 1`` as the other app
benchmarks do (``bench/_app.py``: offline, a catalogue ViT gets seeded random weights through the app's own
hub-cache loading path), ``--replicas K`` through ``deploy/serve.sh K`` (K replicas behind HAProxy).

Each session opens the Overview, waits for the sample photo's maps (so the page has loaded its figure
code, as a student's has by then), picks "Upload" and waits until the app is idle with the upload box. Then
every page is handed its own PNG and a wall-clock instant a moment ahead; at that instant each page puts the
file into the upload box itself and fires its ``change`` event (what a person's file pick does), so all
uploads start together and none waits on this script. Measured inside each page:

* **time to own map**: from the upload event to the first animation frame in which the Overview's rollout
  figure is drawn (``performance.timeOrigin``-based, so pages and processes share one clock);
* **mix-ups**: every photo has its own size and file name. The first map a page draws must span its own
  photo (the figure's axes are in the photo's pixels), the caption must name its own file and size, and its
  heatmap must differ from every other session's (a session showing another's rollout shares its heatmap).
  Any failure is a mix-up, named by the photo the page really shows when that can be told;
* **replica**: the ``X-Vitviz-Replica`` header HAProxy adds (``deploy/haproxy/haproxy.cfg``); a session
  answered by two replicas would have lost its state;
* **informed**: from the upload event to the first frame that shows the session's place in line ("3 ahead of
  you · about 4 s", ``vitviz_app.waiting``), or its map if it never waited; and each different text it saw;
* **first estimate ÷ real wait**: the seconds the first notice with a time promised ("about 4 s") over the
  seconds from the frame that showed it to the session's own map (``bench/_class_report.py``): 1 is a true estimate;
* **server CPU-seconds per upload**: user + system time of the server processes (``/proc/<pid>/stat``; the
  ones this script started, or ``--pids``) from just before the uploads until the last map, divided by N.
* **where the wait to be told goes** (``bench/_trace.py``): the upload request's start and answer (the page's
  resource timing) and, with ``--trace`` (the server started with ``VITVIZ_TRACE=1``, ``vitviz_app.trace``), when
  the session's script run started, when its pass joined the line and when its notice was sent, each step's
  median, p90 and max; and through ``bench/_wire.py`` the same wait on the wire: when the page sent and got its
  websocket messages, when the server's event loop read and answered them, and how late that loop ran.

The pages look only in the first animation frame after their DOM changed (a ``MutationObserver``), and read
their figure only when Plotly drew something new: hashing a heatmap, or laying out the notice's text in every frame
of 30 pages, would be the benchmark's own load, which no student's page carries (``--probe-every-frame``: the
probe that looked in every frame).

**Students without a browser.** ``--clients protocol`` replaces each page by a client that speaks Streamlit's
protocol as the page does (``bench/_student.py``: the same messages, upload and rerun; it reads the notice, the
map, its caption and its heatmap from the messages, and :func:`judge` judges them the same way). Its times end
when a message arrives, with nothing drawn, and it costs the machine about 0.01 CPU-s a student: the server has
the two cores to itself, as in a class whose students bring their own computers. ``--pages K`` keeps K of the
students as Chromium pages among them, timed inside the page as above: what a student sees, end to end, while
the server carries the whole class.

**The browsers' share of the CPU.** Here the 30 pages run on the server's own two cores; in a class they run on
the students' computers. ``--browser-nice 19`` starts Chromium (every process and thread it starts) at nice 19
and under ``SCHED_IDLE`` (Chromium resets nice values itself, not the policy), so the server gets the cores
first and the pages draw with what it leaves them: nearer a class, where the browsers' load is not the
server's. The default (0: the browsers and the server at one priority) is the harsher test. Either way
"informed" and "time to own map" are measured the same way, inside each page.

Run: ``python bench/classroom.py [--sessions 30] [--model "ViT-B/16 (AugReg)"] [--replicas 2] [--app DIR]
[--browser-nice 19] [--clients protocol [--pages 3]] [--trace]`` or
``python bench/classroom.py --url http://host:8501 --pids 1234 [--model ...]``. Writes
``bench/results/classroom.md`` and ``.json`` (``--out`` to change), and the sessions one by one in
``.raw.json``.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _trace  # noqa: E402
from bench._app import Servers, app_env, random_hub_weights  # noqa: E402
from bench._class_report import KINDS, tables  # noqa: E402
from bench._student import ROLLOUT_KEY, UPLOAD_KEY, Crowd  # noqa: E402
from bench._timing import REPO, machine, report  # noqa: E402

__all__ = ["ClassImage", "Session", "class_images", "open_session", "pick_upload", "wait_ready", "arm", "outcome",
           "judge", "cpu_seconds", "run_class", "main"]

CHROMIUM = os.environ.get("VITVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CATALOGUE_TIMM = {"ViT-B/16 (AugReg)": "vit_base_patch16_224.augreg_in21k_ft_in1k"}
UPLOAD = f".st-key-{UPLOAD_KEY} input[type=file]"
ROLLOUT = f".st-key-{ROLLOUT_KEY} .js-plotly-plot"
REPLICA_HEADER = "x-vitviz-replica"
LEAD_S = 1.5  # how far ahead of arming the common upload instant is set (plus 50 ms per session)

_ARM = "\n".join(line for line in (Path(__file__).parent / "_classroom_probe.js").read_text().splitlines()
                 if not line.startswith("//"))  # the function alone: its header comment out
"""Arms one page (``bench/_classroom_probe.js``): at an instant it uploads its photo by itself and times what the
page then shows, in ``window.__vvClass``."""


@dataclass(frozen=True)
class ClassImage:
    """One student's photo: PNG bytes of a size no other photo of the class has."""

    name: str
    data: bytes
    width: int
    height: int

    @property
    def caption(self) -> str:
        """What the Overview's caption says about it (``upload: name · W×H px``)."""
        return f"{self.name} · {self.width}×{self.height} px"


def class_images(n: int, first: int = 0) -> list[ClassImage]:
    """``n`` distinct photos (random shapes on a random background), sizes and names unique from ``first`` on."""
    import numpy as np
    from PIL import Image, ImageDraw

    images = []
    for k in range(first, first + n):
        rng = np.random.default_rng(1000 + k)
        width, height = 300 + 6 * k, 220 + 4 * k
        picture = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(3, 7))):
            x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            box = [x0, y0, x0 + int(rng.integers(30, width // 2)), y0 + int(rng.integers(30, height // 2))]
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        images.append(ClassImage(f"student-{k:02d}.png", buffer.getvalue(), width, height))
    return images


@dataclass
class Session:
    """One student: a browser context (its own cookies), its page, and which replica answered each request
    (``answers``: ``(url, X-Vitviz-Replica or None)``; ``replicas``: the names among them)."""

    context: object
    page: object
    answers: list

    @property
    def replicas(self) -> set:
        """The replicas that answered what a session's state lives in: the page, ``/_stcore/...`` (health,
        uploads), ``/media/...``. Files (``/static/...``, ``/favicon.png``) are left out: every replica has the
        same ones, and the browser answers them from its cache with the header of whichever replica sent them
        first."""
        return {replica for url, replica in self.answers if replica and _holds_session_state(url)}


def _holds_session_state(url: str) -> bool:
    """True for the page itself (a path without a file extension), ``/_stcore/...`` and ``/media/...``."""
    path = urlsplit(url).path
    return path.startswith(("/_stcore/", "/media/")) or "." not in path.rsplit("/", 1)[-1]


def open_session(browser, url: str, timeout_ms: float, wait: bool = True) -> Session:
    """Open ``url`` (the Overview) in a fresh context and, unless ``wait`` is False, :func:`pick_upload`."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    session = Session(context, page, [])
    page.on("response", lambda r: session.answers.append((r.url, r.headers.get(REPLICA_HEADER))))
    page.goto(url, timeout=timeout_ms, wait_until="commit")
    if wait:
        pick_upload(page, timeout_ms)
    return session


def pick_upload(page, timeout_ms: float) -> None:
    """As a student does: wait for the sample photo's maps (so the page has loaded its figure code), pick
    "Upload", and wait until the app is idle with the upload box shown."""
    page.wait_for_function("(sel) => { const gd = document.querySelector(sel); return gd && gd._fullData; }",
                           arg=ROLLOUT, timeout=timeout_ms, polling=200)
    page.locator(".st-key-source button", has_text="Upload").click(timeout=timeout_ms)
    wait_ready(page, timeout_ms)


def wait_ready(page, timeout_ms: float) -> None:
    """Until the page shows the upload box and the app is idle with its model loaded."""
    page.wait_for_selector(UPLOAD, state="attached", timeout=timeout_ms)
    # the "upload a photo" prompt comes after the sidebar loaded the model; then the run ends
    page.wait_for_selector("[data-testid=stMain] [data-testid=stAlert]", timeout=timeout_ms)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout_ms,
                           polling=200)


def arm(page, image: ClassImage, at_ms: float, every_frame: bool = False) -> None:
    """Make ``page`` upload ``image`` by itself at epoch ``at_ms`` and time its first map (looking in the first
    frame after each change of its DOM, or in ``every_frame``)."""
    page.evaluate(_ARM, [ROLLOUT, UPLOAD, image.name, base64.b64encode(image.data).decode(), at_ms, every_frame])


def outcome(page, timeout_ms: float) -> dict:
    """The page's probe once its first map is drawn (or the probe as it stands after ``timeout_ms``)."""
    try:
        page.wait_for_function("() => window.__vvClass && (window.__vvClass.t1 || window.__vvClass.error)",
                               timeout=timeout_ms, polling=250)
    except Exception as exc:  # a timeout is a result of its own: the session never saw a map
        return {**(page.evaluate("() => window.__vvClass") or {}), "error": f"no map: {type(exc).__name__}"}
    return page.evaluate("() => window.__vvClass")


def judge(results: list[dict], images: list[ClassImage]) -> list[str]:
    """A verdict per session: ``'own'``, ``'mix-up: shows …'``, ``'unrecognised: …'`` or ``'no map: …'``."""
    by_size = {(im.width, im.height): im.name for im in images}
    heats: dict[str, list[int]] = {}
    for i, result in enumerate(results):
        if result.get("shown"):
            heats.setdefault(result["shown"]["heat"], []).append(i)
    verdicts = []
    for i, (result, image) in enumerate(zip(results, images)):
        shown = result.get("shown")
        if not shown:
            verdicts.append(result.get("error") or "no map")
            continue
        size = (shown["width"], shown["height"])
        twins = [images[j].name for j in heats[shown["heat"]] if j != i]
        if size != (image.width, image.height):
            other = by_size.get(size)
            verdicts.append(f"mix-up: shows {other}" if other else f"unrecognised: a {size[0]}×{size[1]} map")
        elif not any(image.caption in text for text in shown["captions"]):
            verdicts.append(f"mix-up: the caption does not name {image.caption} ({shown['captions'][:2]})")
        elif twins:
            verdicts.append(f"mix-up: the same heatmap as {', '.join(twins)}")
        else:
            verdicts.append("own")
    return verdicts


def _descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have used so far (fields 14 and 15 of /proc/<pid>/stat);
    a process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15; the list starts at field 3)
    return total / os.sysconf("SC_CLK_TCK")


def browser_executable(nice: int, folder: Path) -> str:
    """The Chromium to launch: :data:`CHROMIUM`, or with ``nice`` > 0 a wrapper in ``folder`` that starts it below
    the servers' priority (students bring their own computers; here the browser shares the server's cores).

    A nice value alone does not hold: Chromium sets its processes' own (0 for a page, 5 for a hidden one, -8 for
    the browser's display thread when run as root). So the wrapper also starts it under ``SCHED_IDLE``
    (``chrt --idle``), a scheduling policy Chromium leaves alone and every process and thread inherits: it runs
    only on cycles no normal task wants."""
    if nice <= 0:
        return CHROMIUM
    wrapper = folder / "chromium-nice"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n {int(nice)} chrt --idle 0 {shlex.quote(CHROMIUM)} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def run_class(browser, url: str, images: list[ClassImage], server_pids, timeout_s: float,
              every_frame: bool = False, pages: int | None = None) -> dict:
    """Open one session per image, upload them all at one instant, and collect what each saw. The first ``pages``
    students (all by default) are browser pages; the others are students without a browser (``bench/_student.py``,
    on a thread of their own). ``browser`` is needed only for pages."""
    pages = len(images) if pages is None else pages
    sessions, crowd = [], None
    try:
        if pages < len(images):
            crowd = Crowd(url, images[pages:], timeout_s)  # connected and ready before the pages open
        for _ in images[:pages]:  # all pages load at once, then each student picks "Upload"
            sessions.append(open_session(browser, url, timeout_s * 1e3, wait=False))
        for session in sessions:
            pick_upload(session.page, timeout_s * 1e3)
        sidebar = sessions[0].page.locator("[data-testid=stSidebar]").inner_text() if sessions else crowd.sidebar()
        model = re.search(r"(\S+) · \d+ layers × \d+ heads", sidebar)  # what really runs (offline fallback?)
        pids = server_pids()
        client = [p for p in _descendants(os.getpid()) if p not in pids]
        cpu0, client0, own0, load = cpu_seconds(pids), cpu_seconds(client), time.process_time(), os.getloadavg()
        at_ms = time.time() * 1e3 + (LEAD_S + 0.05 * len(images)) * 1e3
        for session, image in zip(sessions, images):
            arm(session.page, image, at_ms, every_frame)
        crowds = crowd.upload(at_ms) if crowd else None
        results = [{**outcome(s.page, timeout_s * 1e3), "replicas": sorted(s.replicas), "client": "browser"}
                   for s in sessions]
        results += [{**r, "client": "protocol"} for r in (crowds.result(timeout_s + 60) if crowds else [])]
        cpu = cpu_seconds(pids) - cpu0
        client_cpu = cpu_seconds(client) - client0 + (time.process_time() - own0 if crowd else 0.0)
    finally:
        for session in sessions:
            session.context.close()
        if crowd is not None:
            crowd.close()
    verdicts = judge(results, images)
    return {"results": [{**r, "verdict": v, "image": im.name, "size": [im.width, im.height]}
                        for r, v, im in zip(results, verdicts, images)],
            "server_cpu_s": cpu if pids else None, "client_cpu_s": client_cpu, "server_pids": pids,
            "load_before": [round(v, 2) for v in load], "pages": pages,
            "model": model.group(1).strip("`") if model else None}  # the crowd's sidebar is markdown


def _browser_class(page_url: str, images: list[ClassImage], server_pids, args: argparse.Namespace,
                   pages: int) -> dict:
    """:func:`run_class` with its ``pages`` in a Chromium this script launches (``--browser-nice``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="vitviz-classroom-browser-") as folder:
        browser = playwright.chromium.launch(executable_path=browser_executable(args.browser_nice, Path(folder)),
                                             args=CHROMIUM_ARGS)
        try:
            return run_class(browser, page_url, images, server_pids, args.timeout, args.probe_every_frame, pages)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, default=REPO, help="without --url and with one replica: the app checkout "
                        "to start (e.g. an older commit unpacked with git archive, for a before/after run)")
    parser.add_argument("--sessions", type=int, default=30, help="browser sessions, one photo each (default 30)")
    parser.add_argument("--url", default=None, help="a running vitviz (or HAProxy) to drive; default: start one")
    parser.add_argument("--pids", type=int, nargs="*", default=[], help="with --url: the server processes to "
                        "read CPU time from (HAProxy and the replicas)")
    parser.add_argument("--replicas", type=int, default=1, help="without --url: 1 = one streamlit; K > 1 = "
                        "deploy/serve.sh K (HAProxy in front)")
    parser.add_argument("--model", default=None, help="catalogue model to open (?model=...; without --url, "
                        f"{', '.join(CATALOGUE_TIMM)} gets random weights); default: the app's default")
    parser.add_argument("--threads", type=int, default=1, help="without --url: torch threads per server")
    parser.add_argument("--browser-nice", type=int, default=0, help="start the browser (every process and thread "
                        "of it) at this nice value and under SCHED_IDLE, e.g. 19: the servers get the cores first, "
                        "as if the students' own computers drew their pages; default 0, the servers' priority")
    parser.add_argument("--trace", action="store_true", help="without --url: start the server with VITVIZ_TRACE=1 "
                        "and time each step from the upload to the notice (bench/_trace.py)")
    parser.add_argument("--clients", choices=("browser", "protocol"), default="browser", help="browser: a Chromium "
                        "page per student (the default); protocol: a client per student that speaks Streamlit's "
                        "protocol with no browser (bench/_student.py), so the server's cores are its own")
    parser.add_argument("--pages", type=int, default=0, help="with --clients protocol: this many of the students "
                        "are still Chromium pages, timed inside the page as with --clients browser (default 0)")
    parser.add_argument("--probe-every-frame", action="store_true", help="each page looks for its notice and map "
                        "in every animation frame (the probe before 2026-12-07 §18) instead of in the first frame "
                        "after its DOM changed")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a session may wait for its map")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "classroom.md",
                        help="markdown report; .json and .raw.json beside it")
    args = parser.parse_args(argv)
    servers = None
    if args.url is None:
        if args.model in CATALOGUE_TIMM:
            random_hub_weights(CATALOGUE_TIMM[args.model])
        env = {**app_env(threads=args.threads), **({"VITVIZ_TRACE": "1"} if args.trace else {})}
        servers = Servers(args.replicas, env, app_dir=args.app, wire=args.trace)
        url, server_pids = servers.url, servers.pids
    else:
        url, server_pids = args.url.rstrip("/") + "/", lambda: list(args.pids)
    query = {"model": args.model} if args.model else {}
    images = class_images(args.sessions)
    page_url = url + (f"?{urlencode(query)}" if query else "")
    pages = args.sessions if args.clients == "browser" else min(args.pages, args.sessions)
    try:
        if pages:
            run = _browser_class(page_url, images, server_pids, args, pages)
        else:
            run = run_class(None, page_url, images, server_pids, args.timeout, pages=0)
    finally:
        if servers is not None:
            servers.stop()
    marks = sorted((m for log in (servers.logs() if servers else []) for m in _trace.read(log)), key=lambda m: m.epoch)
    where = args.url or (f"{args.replicas} replicas behind HAProxy (deploy/serve.sh)" if args.replicas > 1
                         else "one streamlit server")
    label = f"{run['model'] or args.model or 'the default model'}, {where}"
    if args.clients == "protocol":
        label += f", {args.sessions - pages} students without a browser" + (f" and {pages} browser pages" if pages
                                                                            else "")
    if pages and args.browser_nice:
        label += f", browser at nice {args.browser_nice}"
    if args.probe_every_frame:
        label += ", pages probed every frame"
    for r in run["results"]:
        took = f"{(r['t1'] - r['t0']) / 1e3:6.2f} s" if r.get("t1") and r.get("t0") else "   —    "
        print(f"{r['image']}  {took}  {','.join(r['replicas']) or '—':8s} {r['verdict']}")
    for result, image in zip(run["results"], images):
        result["steps"] = _trace.steps(marks, _trace.digest(image.data), result)
        result["wire"] = _trace.wire_steps(marks, _trace.digest(image.data), result)
    told = [r for r in run["results"] if r.get("notices")]
    run["loop_lag"] = _trace.loop_lag(marks, min((r["t0"] / 1e3 for r in told), default=0),
                                      max((r["t_informed"] / 1e3 for r in told), default=0))
    kinds = sorted({r.get("client", "browser") for r in told})
    traced = []
    for kind in kinds:  # the pages' steps and the clients' apart: only a page draws what it is told
        named = label if len(kinds) == 1 else f"{label}; {KINDS[kind]} only"
        own = [r for r in told if r.get("client", "browser") == kind]
        traced += [_trace.table([r["steps"] for r in own], named),
                   _trace.table([r["wire"] for r in own], named, wire=True, lag=run["loop_lag"])]
    report([*tables(run, label), *traced], machine(), args.out)
    raw = args.out.with_suffix(".raw.json")
    raw.write_text(json.dumps({"url": url, "label": label, **run}, indent=1))
    print(f"wrote {raw}")


if __name__ == "__main__":
    main()
