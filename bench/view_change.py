"""View changes: server-side time of one app rerun when only a view control moves, vs a rerun that recaptures.

Drives the real app in-process with ``streamlit.testing.v1.AppTest`` on a random-weight ViT-B/16 (the
app's own offline loading path, see ``bench/_app.py``): one session on the Attention page, one on the
Rollout page, sharing the process's Streamlit caches as two browser tabs share a server.

Each round changes every control once, to a value it did not have, and times ``AppTest.run()`` (the whole
script: sidebar, cached loaders, analysis, Plotly figure building and serialisation; AppTest's own
bookkeeping included). The cases, in an order shuffled every round:

* Attention page: *nothing changed* (the floor of a rerun), *layer*, *head* (cycling through the heads and the
  three fusions), *query patch* (row and column set together, as one click on the image does), and
  *recapture* (the forward-pass cache cleared first, so the model runs again).
* Rollout page: *fusion* and *discard ratio* (the rollout view cache cleared first, so the rollout is
  recomputed: the first time a setting is seen), *start layer*, and *recapture* (this page also runs the
  gradient pass for the class-specific rollout).
* Position embeddings: *position* (row and column), *colour range*, *filter components*; Heads & depth:
  *hidden state*; How a ViT works: *patch* (row and column), *layer*, *head* (``--pages`` picks pages).

Target: a view change ≤ 100 ms for ViT-B/16. Run: ``python bench/view_change.py [--quick] [--out ...]``.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._app import APP, use_random_hub  # noqa: E402
from bench._timing import Table, add_common_args, machine, quantiles, report, setup_threads  # noqa: E402

__all__ = ["MODELS", "open_page", "main"]

MODELS = {"ViT-B/16 (AugReg)": "vit_base_patch16_224.augreg_in21k_ft_in1k",
          "ViT-S/16 (AugReg)": "vit_small_patch16_224.augreg_in21k_ft_in1k"}
TARGET_MS = 100.0


def open_page(model_key: str, page: str, timeout_s: float = 600.0):
    """An AppTest session on ``page`` with ``model_key`` chosen in the sidebar (through the URL)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout_s)
    at.query_params["model"] = model_key
    at.switch_page(page)
    at.run()
    _check(at, model_key)
    return at


def _check(at, model_key: str) -> None:
    if at.exception or at.error:
        raise RuntimeError(f"the app failed: {[e.value for e in at.exception] + [e.value for e in at.error]}")
    if at.selectbox(key="model").value != model_key:
        raise RuntimeError(f"the app runs {at.selectbox(key='model').value!r}, not {model_key!r}")
    captions = " ".join(str(c.value) for c in at.sidebar.caption)
    if "local cache" not in captions:
        raise RuntimeError(f"the app did not load the benchmark's cached weights: {captions[:200]}")


def _cycle(values):
    return itertools.cycle(values)


def attention_cases(at, num_layers: int, num_heads: int, grid: tuple[int, int]) -> dict[str, Callable[[], None]]:
    """Name → a function that makes one change (untimed) on the Attention page; the rerun is timed after."""
    from vitviz_app import loaders

    layers = _cycle([i for i in range(num_layers)])
    heads = _cycle([str(h) for h in range(num_heads)] + ["max", "min", "mean"])
    cells = _cycle([(r, c) for r in range(1, grid[0], 3) for c in range(2, grid[1], 4)])

    def layer():
        current = at.slider(key="attn_layer").value
        value = next(layers)
        at.slider(key="attn_layer").set_value(value if value != current else next(layers))

    def head():
        current = at.selectbox(key="attn_head").value
        value = next(heads)
        at.selectbox(key="attn_head").set_value(value if value != current else next(heads))

    def click():
        row, col = next(cells)
        at.number_input(key="attn_row").set_value(row)
        at.number_input(key="attn_col").set_value(col)

    return {"nothing changed": lambda: None, "layer": layer, "head": head, "query patch (click)": click,
            "recapture": loaders.forward.clear}


def rollout_cases(at, num_layers: int) -> dict[str, Callable[[], None]]:
    """Name → one untimed change on the Rollout page."""
    from vitviz_app import loaders
    from vitviz_app.views import rollout_steps_view, rollout_view

    fusions = _cycle(["max", "min", "mean"])
    ratios = _cycle([round(0.05 * k, 2) for k in range(1, 20)])
    starts = _cycle(list(range(num_layers)))

    def first_time():  # the rollout and its step matrices, as if the setting had never been seen
        rollout_view.clear()
        rollout_steps_view.clear()

    def fusion():
        first_time()
        at.selectbox(key="ro_fusion").set_value(next(fusions))

    def discard():
        first_time()
        at.slider(key="ro_discard").set_value(next(ratios))

    def start():
        current = at.slider(key="ro_start").value
        value = next(starts)
        at.slider(key="ro_start").set_value(value if value != current else next(starts))

    return {"fusion (rollout recomputed)": fusion, "discard ratio (rollout recomputed)": discard,
            "start layer": start, "recapture (forward + gradient pass)": loaders.forward.clear}


def _step(at, kind: str, key: str, values) -> Callable[[], None]:
    """A change that sets widget ``key`` to the next of ``values`` that differs from its current value."""
    cycle = _cycle(values)

    def change():
        widget = getattr(at, kind)(key=key)
        value = next(cycle)
        widget.set_value(value if value != widget.value else next(cycle))

    return change


def _pair(at, rows: str, cols: str, cells) -> Callable[[], None]:
    cycle = _cycle(cells)

    def change():
        row, col = next(cycle)
        at.number_input(key=rows).set_value(row)
        at.number_input(key=cols).set_value(col)

    return change


def other_cases(page: str, at, num_layers: int, num_heads: int, grid: tuple[int, int]) -> dict:
    """Name → one untimed view change on the other pages (controls that never run the model)."""
    cells = [(r, c) for r in range(1, grid[0], 3) for c in range(2, grid[1], 4)]
    if page == "Position embeddings":
        # the position is the tile explorer's since issue 22 (a commit sets the state): a widget only in old trees
        widgets = {w.key for w in at.get("number_input")}
        pair = {"position (row, col)": _pair(at, "pos_row", "pos_col", cells)} if "pos_row" in widgets else {}
        return {**pair,
                "colour range": _step(at, "toggle", "pos_range", [True, False]),
                "filter components": _step(at, "slider", "pos_filters", [7, 14, 21, 28, 35, 42])}
    if page == "Heads & depth":
        return {"hidden state": _step(at, "slider", "heads_state", list(range(num_layers + 1)))}
    if page == "How a ViT works":
        widgets = {w.key for w in at.get("number_input")}
        pair = {"patch (row, col)": _pair(at, "how_row", "how_col", cells)} if "how_row" in widgets else {}
        return {**pair,
                "layer": _step(at, "slider", "how_layer", list(range(num_layers))),
                "head": _step(at, "selectbox", "how_head", list(range(num_heads)))}
    raise ValueError(page)


OTHER_PAGES = {"Position embeddings": "pages/position_embeddings.py", "Heads & depth": "pages/heads_depth.py",
               "How a ViT works": "pages/how_vit_works.py"}


def time_reruns(sessions: dict[str, tuple[object, dict]], rounds: int, budget_s: float | None, seed: int = 0) -> dict:
    """Rounds over every (page, case) in a shuffled order: change, then time ``at.run()`` (wall and CPU).

    A recapture clears the forward-pass cache that both sessions share, so afterwards every session reruns
    once, untimed, to refill it: the next case then measures its own change only.
    """
    rng = random.Random(seed)
    keys = [(page, name) for page, (_at, cases) in sessions.items() for name in cases]
    wall = {k: [] for k in keys}
    cpu = {k: [] for k in keys}
    started = time.perf_counter()
    for r in range(rounds):
        if budget_s is not None and r >= 5 and time.perf_counter() - started > budget_s:
            break
        for page, name in rng.sample(keys, len(keys)):
            at, cases = sessions[page]
            cases[name]()
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            at.run()
            wall[(page, name)].append(time.perf_counter() - t0)
            cpu[(page, name)].append(time.process_time() - c0)
            if at.exception:
                raise RuntimeError(f"{page} / {name}: {[e.value for e in at.exception]}")
            if name.startswith("recapture"):
                for other, _cases in sessions.values():
                    other.run()
    return {"wall": wall, "cpu": cpu}


def _payload_kib(at) -> float:
    return sum(len(c.proto.spec) for c in at.get("plotly_chart")) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--model", default="ViT-B/16 (AugReg)", choices=list(MODELS))
    parser.add_argument("--budget", type=float, default=150.0, help="seconds of timed rounds (at least 5)")
    parser.add_argument("--pages", nargs="*", default=["Attention", "Rollout", *OTHER_PAGES],
                        help="pages to time (default: all with view controls)")
    args = parser.parse_args(argv)
    use_random_hub([MODELS[args.model]])  # before huggingface_hub is imported
    threads = setup_threads(args.threads)

    t0 = time.perf_counter()
    attention = open_page(args.model, "pages/attention.py")
    first_ms = (time.perf_counter() - t0) * 1e3
    rollout = open_page(args.model, "pages/rollout.py")
    model = attention.session_state["_vitviz_context"].loaded.model
    num_layers, num_heads = len(model.blocks), int(model.blocks[0].attn.num_heads)
    grid = tuple(int(g) for g in model.patch_embed.grid_size)
    sessions = {}
    if any(w.key == "attn_query" for w in attention.get("segmented_control")):  # the page's own controls
        attention.segmented_control(key="attn_query").set_value("patch").run()  # a patch is the query from now on
        sessions = {"Attention": (attention, attention_cases(attention, num_layers, num_heads, grid)),
                    "Rollout": (rollout, rollout_cases(rollout, num_layers))}
    else:  # their browser components own these views since issue 22: bench/explorer_latency.py times them
        print("Attention and Rollout: their views belong to their browser components (bench/explorer_latency.py)")
    for page, path in OTHER_PAGES.items():
        if page in args.pages:
            at = open_page(args.model, path)
            sessions[page] = (at, other_cases(page, at, num_layers, num_heads, grid))
    sessions = {page: session for page, session in sessions.items() if page in args.pages}
    rounds = args.repeats or (2 if args.quick else 30)
    times = time_reruns(sessions, rounds, None if args.quick or args.repeats else args.budget)
    payload = {page: _payload_kib(at) for page, (at, _cases) in sessions.items()}

    table = Table(
        f"One app rerun per view change, {args.model} with random weights ({threads} torch thread(s), AppTest)",
        ["page", "change", "wall ms median", "wall p25–p75", "CPU ms median", "× recapture (wall)",
         f"≤ {TARGET_MS:.0f} ms?", "figure JSON KiB"],
    )
    for page in sessions:
        recapture = next((k for k in times["wall"] if k[0] == page and k[1].startswith("recapture")), None)
        base = statistics.median(times["wall"][recapture]) if recapture else float("nan")
        for key in (k for k in times["wall"] if k[0] == page):
            q1, q2, q3 = quantiles([t * 1e3 for t in times["wall"][key]])
            cpu = statistics.median(times["cpu"][key]) * 1e3
            verdict = "—" if key[1].startswith("recapture") else ("yes" if q2 <= TARGET_MS else "no")
            ratio = f"{q2 / 1e3 / base:.3f}" if recapture else "—"
            table.add(page, key[1], q2, f"{q1:.0f}–{q3:.0f}", cpu, ratio, verdict, payload[page])
    table.notes += [
        f"{len(next(iter(times['wall'].values())))} interleaved rounds; the first run of the Attention page "
        f"(model load + capture + page) took {first_ms:,.0f} ms.",
        "CPU ms is this process's CPU time during the rerun (script thread, AppTest, torch), so it stays "
        "meaningful when other processes take the CPU; wall time is what a user would wait server-side.",
        "figure JSON KiB: size of the Plotly specs the page sends (after the last rerun).",
    ]
    report([table], machine(), args.out)


if __name__ == "__main__":
    main()
