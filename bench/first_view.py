"""First view: from a fresh ``streamlit run app.py`` being healthy to the first Overview fully drawn.

For each app checkout given (this tree, and e.g. an older commit unpacked elsewhere, to compare side by
side), in turn: start ``streamlit run app.py`` on a free port (offline, see ``bench/_app.py``), wait for
``/_stcore/health``, then open the Overview in headless Chromium and wait until both of its Plotly figures
(top-5 predictions and rollout) are drawn. Times, on the wall clock (epoch seconds, so the server's log
lines and the browser's clock line up on this one machine):

* **server start → healthy**: the Streamlit process starting (nothing of the app runs yet);
* **healthy → page shell**: the browser connected and the page's first element (the sidebar) shown;
* **healthy → Overview drawn**: what a first visitor waits for (the target: ≤ 8 s);
* **start → Overview drawn**: the same counted from the command, for a visitor who opens the page as the
  server starts (``--arrive-after S`` opens it S seconds after healthy instead: a server that has been up);
* the warm-up's steps (``vitviz_app/warmup.py``, from the server log: imports, model, image, capture),
  where the checkout has them.

The model is the app's default (offline: the bundled vitviz-shapes), or ``--model`` (a catalogue key; the
ViT-B/16 gets random weights in a private hub cache, as the other app benchmarks do).

``--page attention`` (any page's URL path) opens that page instead, as a shared deep link would: "drawn" is then
its first view (the attention explorer's map, or the page's first Plotly figure), and the table also gives what
the start-up progress box said it was opening (issue 22: it said "Drawing the Overview" on every page).

``--warm`` measures a second visitor (a new browser) once a first one has drawn the page, so the server's caches
are filled: e.g. ``--page vit_vs_cnn --warm``, whose first view is all of its figures drawn. That visitor opens the
page's link in a new browser, which must first load Streamlit's and Plotly's code. ``--via PATH`` (with ``--page``)
measures the learner's usual way instead: the visitor opens ``PATH`` (``""``: the Overview), waits for its first
view, then clicks the page in the sidebar's navigation; the time is from that click to the page's first view.

"Drawn" is timed by the page itself (``bench/_first_view_probe.js``): the first animation frame in
which every figure is there, looked for only in the first frame after each change of the document, so the timer
adds no work while the page loads. ``--python-poll`` (with ``--warm``) also times each visit as this bench did
before, from Python every 50 ms, reading the page's whole text each time, in another new browser right before or
after it (alternating): that old timer forced a layout of the loading page twenty times a second and made the view
it timed 0.4–0.65 s slower at the median (bench/README.md §20).

``--returning`` (with ``--warm``): the measured visitor opens the link in a new browser that keeps the first
visitor's profile, so Streamlit's and Plotly's code come from its cache: a learner who has used the app before.

Run: ``python bench/first_view.py [--app DIR ...] [--repeats N] [--model KEY] [--page PATH] [--warm] [--via PATH]
[--returning] [--python-poll] [--out ...]``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._app import app_env, free_port, random_hub_weights  # noqa: E402
from bench._timing import REPO, Table, add_common_args, machine, report  # noqa: E402

__all__ = ["main", "first_view"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIGURES = (".st-key-fig-overview-predictions .js-plotly-plot .main-svg",
           ".st-key-fig-overview-rollout .js-plotly-plot .main-svg")
TARGET_S = 8.0
TIMEOUT_MS = 600_000
CATALOGUE_TIMM = {"ViT-B/16 (AugReg)": "vit_base_patch16_224.augreg_in21k_ft_in1k"}
_WARMUP = re.compile(r"vitviz warm-up: (\w+) done at [\d.]+ s \(epoch ([\d.]+)\)")


def _start(app_dir: Path, port: int, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, float, float]:
    """Start the server; return it with the epoch times of the start and of the first healthy answer."""
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=app_dir, env={**os.environ, **env}, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT_MS / 1e3
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, started, time.time()
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise TimeoutError(f"streamlit did not become healthy; see {log}")


PAGE_VIEWS = {"": FIGURES, "attention": ("canvas.vv-map",),
              "vit_vs_cnn": tuple(f".st-key-fig-cnn-{key} .js-plotly-plot .main-svg" for key in (
                  "erf", "reach", "cka", "vit-map", "cnn-map", "curve-most", "curve-least"))}
"""What a page's first view is: the Overview's two figures, the Attention explorer's map, every figure of ViT vs
CNN (the last one drawn; with the data curves where the checkout ships their JSON, :func:`page_views`); others'
first figure."""
DATA_CURVES = ".st-key-fig-cnn-data .js-plotly-plot .main-svg"


def page_views(app_dir: Path, page_path: str) -> tuple[str, ...]:
    """The selectors of ``page_path``'s first view in the checkout ``app_dir``."""
    views = PAGE_VIEWS.get(page_path, (".js-plotly-plot .main-svg",))
    if page_path == "vit_vs_cnn" and (app_dir / "vitviz" / "assets" / "data_curves.json").is_file():
        views += (DATA_CURVES,)
    return views
_PROBE = Path(__file__).with_name("_first_view_probe.js").read_text()
"""The page's own timer (``bench/_first_view_probe.js``): it notes, in ``window.__vvView``, the first animation frame
in which every watched selector matches, looking only in the first frame after each change of the document."""
_PROGRESS = "() => (document.body.innerText.match(/(Starting vitviz[^\\n]*)/) || [null, null])[1]"
_SHOWN = "window.__vvView && window.__vvView.drawn !== null"


def _browse(url: str, selectors: tuple[str, ...], via: tuple[str, tuple[str, ...]] | None = None,
            python_poll: bool = False, profile: Path | None = None) -> dict[str, float]:
    """Open ``url`` and return epoch times of the page shell and of the page's first view drawn, and the first
    title of the start-up progress box seen (None when none was shown). With ``via`` (a URL and its first view's
    selectors) that page is opened and drawn first, and the page of ``url`` is reached by a click in the sidebar's
    navigation ("opened" is then the click's event time).

    The page times itself (:data:`_PROBE`): "drawn" is the first frame that has every figure (its callbacks), and the
    bench only asks for the result, four times a second. ``python_poll`` times it the way this bench did until
    2026-12-07 instead: from Python, every 50 ms, the page's text read through ``innerText`` each time (a layout
    of the whole page while it loads), which slowed the page it timed (bench/README.md §20).

    ``profile``: a Chromium profile folder to open the browser with (its HTTP and code caches kept on disk between
    browsers); None: a new browser with nothing cached.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        viewport = {"width": 1500, "height": 1100}
        if profile is None:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport=viewport)
        else:
            browser = context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM,
                                                                     args=CHROMIUM_ARGS, viewport=viewport)
        try:
            if not python_poll:
                context.add_init_script(_PROBE)
                context.add_init_script(f"window.__vvView.watch({json.dumps(list(via[1] if via else selectors))})")
            page = context.new_page()
            if via is not None:
                page.goto(via[0], timeout=TIMEOUT_MS)
                for selector in via[1]:
                    page.wait_for_selector(selector, timeout=TIMEOUT_MS)
                if not python_poll:
                    page.evaluate("(selectors) => window.__vvView.watch(selectors)", list(selectors))
                link = page.locator(f"[data-testid=stSidebarNav] a[href$='/{url.rsplit('/', 1)[-1]}']")
                opened = time.time()
                link.click()
            else:
                opened = time.time()
                page.goto(url, timeout=TIMEOUT_MS, wait_until="commit")
            if python_poll:
                drawn, shell, title = _poll_from_python(page, selectors)
            else:
                page.wait_for_function(_SHOWN, polling=250, timeout=TIMEOUT_MS)
                view = page.evaluate("({drawn: window.__vvView.drawn, shell: window.__vvView.shell, "
                                     "title: window.__vvView.title, clicked: window.__vvView.clicked})")
                drawn, title = view["drawn"] / 1e3, view["title"]
                shell = view["shell"] / 1e3 if view["shell"] is not None else drawn
                if via is not None and view["clicked"] is not None:
                    opened = view["clicked"] / 1e3  # the click's own event, not the bench's call
        finally:
            browser.close()
    return {"opened": opened, "shell": shell, "drawn": drawn, "title": title or "—"}


def _poll_from_python(page, selectors: tuple[str, ...]) -> tuple[float, float, str | None]:
    """The old timer (``--python-poll``): epoch times of the view drawn and of the shell, and the progress title."""
    progress, shell = None, None
    deadline = time.monotonic() + TIMEOUT_MS / 1e3
    while time.monotonic() < deadline:  # poll: the progress box is gone once the page draws
        try:
            progress = progress or page.evaluate(_PROGRESS)
            if shell is None and page.query_selector("[data-testid=stSidebar]"):
                shell = time.time()
            if all(page.query_selector(sel) for sel in selectors):
                break
        except Exception:  # the document is being replaced (navigation): try again
            pass
        page.wait_for_timeout(50)
    for selector in selectors:
        page.wait_for_selector(selector, timeout=TIMEOUT_MS)
    drawn = time.time()
    return drawn, shell or drawn, progress


def first_view(app_dir: Path, env: dict[str, str], query: str = "", arrive_after: float = 0.0,
               page_path: str = "", warm: bool = False, via: str | None = None, python_poll: bool = False,
               old_first: bool = False, returning: bool = False) -> dict:
    """One fresh server of ``app_dir``: times in seconds after it became healthy, plus its warm-up steps.

    With ``arrive_after`` the browser opens the page that many seconds after the server became healthy, and
    ``opened→Overview`` is what that later visitor waits for. With ``warm`` a first visitor opens the page and
    waits for it to be drawn (filling the server's caches) before the measured visitor, in a new browser, opens it:
    ``opened→Overview`` is then a warm first view. With ``python_poll`` the view is also timed by the old timer
    (:func:`_browse`), in another new browser just before (``old_first``) or after it: ``opened→Overview, old timer``.
    With ``returning`` (and ``warm``) the first visitor's browser profile is kept and the measured visitor opens the
    page in a new browser with that profile: a learner who has used the app before opens a shared link.
    """
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="vitviz-first-view-")) / "streamlit.log"
    proc, started, healthy = _start(app_dir, port, env, log)
    profile = Path(tempfile.mkdtemp(prefix="vitviz-first-view-profile-")) if returning else None
    try:
        time.sleep(arrive_after)
        views = page_views(app_dir, page_path)
        if warm:
            _browse(f"http://127.0.0.1:{port}/{page_path}{query}", views, profile=profile)
        before = None if via is None else (f"http://127.0.0.1:{port}/{via}{query}", page_views(app_dir, via))
        url = f"http://127.0.0.1:{port}/{page_path}{query}"
        old = None
        if python_poll and old_first:
            old = _browse(url, views, before, python_poll=True)
        times = _browse(url, views, before, profile=profile)
        if python_poll and not old_first:
            old = _browse(url, views, before, python_poll=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine: do not lose the measurement over a slow exit
            proc.kill()
            proc.wait(timeout=60)
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)
    steps = {m.group(1): float(m.group(2)) - healthy for m in _WARMUP.finditer(log.read_text())}
    return {"start→healthy": healthy - started, "healthy→shell": times["shell"] - healthy,
            "healthy→Overview": times["drawn"] - healthy, "start→Overview": times["drawn"] - started,
            "opened→Overview": times["drawn"] - times["opened"], "steps": steps, "title": times["title"],
            "log": str(log), **({} if old is None else {"opened→Overview, old timer": old["drawn"] - old["opened"]})}


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--app", type=Path, nargs="*", default=[REPO],
                        help="app checkouts to compare, each started fresh in turn (default: this tree)")
    parser.add_argument("--model", default=None, choices=list(CATALOGUE_TIMM),
                        help="open the Overview with this catalogue model (default: the app's default)")
    parser.add_argument("--arrive-after", type=float, default=0.0,
                        help="open the page this many seconds after the server is healthy (default: at once)")
    parser.add_argument("--warm", action="store_true",
                        help="measure a second visitor's first view, once a first one has drawn the page")
    parser.add_argument("--via", default=None, metavar="PATH",
                        help="reach --page by a click in the navigation from this page (\"\": the Overview), once it "
                             "is drawn: the time is from the click")
    parser.add_argument("--python-poll", action="store_true",
                        help="with --warm: also time each visit with this bench's timer before 2026-12-07 (from "
                             "Python every 50 ms, reading the page's text each time, which slows the page it times), "
                             "in another new browser right before or after it, alternating")
    parser.add_argument("--returning", action="store_true",
                        help="with --warm: the measured visitor's new browser has the first visitor's profile (its "
                             "HTTP and code caches), as a learner who has used the app before")
    parser.add_argument("--page", default="",
                        help="the page to open, by its URL path (e.g. attention; default: the Overview)")
    args = parser.parse_args(argv)
    rounds = args.repeats or (1 if args.quick else 3)
    env = app_env(threads=args.threads)
    query = ""
    if args.model:
        random_hub_weights(CATALOGUE_TIMM[args.model])
        query = f"?model={quote(args.model)}"
    results: dict[str, list[dict]] = {str(a): [] for a in args.app}
    if (args.python_poll or args.returning) and not args.warm:
        parser.error("--python-poll and --returning time a warm visit: give --warm too")
    for round_ in range(rounds):  # the checkouts alternate, so a change in the machine's load hits both
        for app in args.app:
            results[str(app)].append(first_view(app, env, query, args.arrive_after, args.page, args.warm, args.via,
                                                args.python_poll, old_first=round_ % 2 == 1,
                                                returning=args.returning))
            print(app, results[str(app)][-1], flush=True)
    shown, shown_via = args.page or "Overview", "the Overview"
    table = Table(f"First view of {shown} after a fresh start ({args.model or 'default model'}; seconds, median of "
                  f"{rounds}; page opened {args.arrive_after:g} s after healthy"
                  f"{'; warm: a second visitor, after a first one drew the page' if args.warm else ''}"
                  f"{', in a browser that has used the app before' if args.returning else ''}"
                  f"{'' if args.via is None else f'; reached by a click from {args.via or shown_via}, timed from it'})",
                  ["app", "start → healthy", "healthy → page shell", f"healthy → {shown} drawn",
                   f"≤ {TARGET_S:.0f} s?", f"start → {shown} drawn", f"page opened → {shown} drawn",
                   *(["the same, old timer (--python-poll)"] if args.python_poll else []),
                   "warm-up steps after healthy (imports / model / image / capture / figures)",
                   "progress box said"])
    for app, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("start→healthy", "healthy→shell", "healthy→Overview", "start→Overview", "opened→Overview")}
        steps = [statistics.median(r["steps"][s] for r in runs) if all(s in r["steps"] for r in runs) else None
                 for s in ("imports", "model", "image", "capture", "figures")]
        step_text = " / ".join("—" if s is None else f"{s:.1f}" for s in steps)
        table.add(app, med["start→healthy"], med["healthy→shell"], med["healthy→Overview"],
                  "yes" if med["healthy→Overview"] <= TARGET_S else "no", med["start→Overview"],
                  med["opened→Overview"],
                  *([statistics.median(r["opened→Overview, old timer"] for r in runs)] if args.python_poll else []),
                  step_text, runs[-1]["title"])
    table.notes += [
        "Overview drawn: both Plotly figures (top-5 predictions, rollout) have their SVG in headless Chromium; "
        "attention drawn: the explorer's map canvas is there; another page: its first Plotly figure. "
        + "The page times itself (bench/_first_view_probe.js): the first animation frame that has them all, looked "
        "for in the first frame after each change of the page."
        + (" Old timer: the same view in another new browser just before or after (alternating), timed from Python "
           "every 50 ms, the page's text read each time." if args.python_poll else ""),
        "Warm-up steps: epoch time of the server's 'vitviz warm-up' log lines minus the healthy time.",
        "Checkouts run in alternation; the machine is shared, so compare rows of one run only.",
    ]
    report([table], machine(), args.out)


if __name__ == "__main__":
    main()
