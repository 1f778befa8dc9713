"""Every page of the app, in both languages, on every token layout (AppTest, in-process); what a page shows, and
the user's choices kept. The pages are read from the app's navigation (``tests/_pages.py``); their layout in a
real browser at each width is in ``tests/browser/test_browser_pages.py``."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests._apptest import component_data, reference_capture, values
from tests._pages import app_pages
from tests._texts import CJK, NEVER, assert_chinese, gloss_problems, glossary, page_texts
from vitviz.i18n import _, language
from vitviz_app.ui import PATH

PAGES = app_pages()
# What each page shows: its title in each language, the key of its download, and in Chinese a piece of its
# intro: the subject it leads with, or a term glossed where the page teaches it.
EXPECTED = {
    "overview": ("How a Vision Transformer sees your image", "Vision Transformer 如何看你的图像", "overview.download",
                 None),
    "patches": ("Patches", "图像块", "patches.download", "**图像块（patch）**"),
    "position_embeddings": ("Position embeddings", "位置编码", "pos.download",
                            "**可学习的位置编码（position embedding）**"),
    "attention": ("Attention", "注意力", "attn.download", "每个词元（token）都作为**查询**"),
    "rollout": ("Attention rollout", "Attention Rollout", "ro.download",
                "**Attention Rollout**（注意力逐层累乘，Abnar & Zuidema 2020）"),
    "heads_depth": ("Heads & depth", "注意力头与深度", "heads.download",
                    "**平均注意力距离**是一个查询图像块平均看向多远"),
    "compare": ("Compare methods", "比较归因方法", "cmp.download", "本页让每种归因方法解释同一张图像"),
    "how_vit_works": ("How a Vision Transformer works", "Vision Transformer 是如何工作的", "how.download", None),
    "vit_vs_cnn": ("ViT vs CNN", "ViT 与 CNN", "cnn.download", "卷积神经网络（CNN）从小邻域出发"),
}
LEAD = {"rollout", "heads_depth", "compare"}
"""Pages whose intro leads with its subject, with at most one parenthesis a sentence (issue 23, item 7)."""
PLACEHOLDER = re.compile(r'"#0000[0-9]{2}"')  # Streamlit's theme tokens (tests/app/test_app_colours.py)


def test_every_page_of_the_navigation_is_described_here():
    assert sorted(EXPECTED) == sorted(p.name for p in PAGES)


def _assert_charts_reach_the_browser_as_built(at) -> None:
    """No chart theme rewrites a figure's colours, and every long title was wrapped with room made for it."""
    from vitviz_app.plotting import wrap_title

    for chart in at.main.get("plotly_chart"):
        assert chart.proto.theme == "" and not PLACEHOLDER.search(chart.proto.spec)
        layout = json.loads(chart.proto.spec)["layout"]
        title = (layout.get("title") or {}).get("text") or ""
        if "<br>" in title:
            assert layout["title"]["yanchor"] == "top" and layout["margin"]["t"] >= 60 + 22, title
        else:
            assert wrap_title(title) == title, f"a long title reached the browser unwrapped: {title!r}"
    assert any("@container vitviz-main" in h.proto.body for h in at.get("html")), "the layout CSS is on the page"


def _has_han(text: str) -> bool:
    return bool(CJK.search(text))


def _assert_speaks_chinese(at, page) -> None:
    """Every visible text Chinese, each glossary term glossed at its first use on the pages that teach it (and
    nowhere else), no wording docs/glossary.md rules out, the intro leading with its subject, the page's widgets
    labelled in Chinese, and still so after a rerun from the test's thread."""
    assert_chinese(at, page.name)
    # the page's "next" links name other pages, as the navigation does: their terms are glossed there
    texts = page_texts(at, where="main", links=False)
    texts = [t for t in texts if t != at.title[0].value]  # the title is a name: the gloss comes in the intro
    problems = gloss_problems("\n".join(texts), glossary(), page.name)
    assert not problems, "\n".join(problems)
    stumbles = [f"{reason}: {t[:120]!r}" for t in page_texts(at) for pattern, reason in NEVER.items()
                if re.search(pattern, t)]
    assert not stumbles, "\n".join(stumbles)
    intro = EXPECTED[page.name][3]
    shown = [m.value for m in at.markdown if intro and intro in m.value]
    assert intro is None or shown, [m.value[:60] for m in at.markdown]
    if page.name in LEAD:
        assert shown[0].startswith(intro), shown[0][:60]
        crowded = [s for s in re.split(r"(?<=[。？！])", shown[0]) if s.count("（") > 1]
        assert not crowded, crowded
    labels = [w.label for kind in ("slider", "select_slider", "selectbox", "multiselect", "number_input", "toggle",
                                   "segmented_control") for w in at.main.get(kind)]
    assert all(_has_han(label) for label in labels), labels
    assert all(_has_han(d.proto.label) for d in at.main.get("download_button"))
    # a second run formats the widgets' values again from the test's thread, where no language is set: the
    # format functions keep the language of the run that drew them (vitviz.i18n.keep_language)
    title = at.title[0].value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_page_renders_in_each_language(open_app, page, lang):
    at = open_app(page.file, query={"lang": lang} if lang != "en" else None)
    english, chinese, download_key, _intro = EXPECTED[page.name]
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [english if lang == "en" else chinese]
    if page.file == "pages/attention.py":  # its map is the explorer, drawn in the browser; Plotly figures on demand
        assert component_data(at, "attention_explorer")["committed"] == {
            "token": 0, "layer": at.session_state["attn_layer"], "head": "mean", "rows": None,
            "url": dict.fromkeys(("attn_layer", "attn_head", "attn_query", "attn_row", "attn_col"))}  # defaults
        assert not at.get("plotly_chart") and at.toggle(key="attn_figures").value is False
    else:
        assert at.get("plotly_chart"), "every page shows at least one figure"
    _assert_charts_reach_the_browser_as_built(at)
    assert download_key in [d.key for d in at.download_button]
    # every page but the last of the learner's path ends with a link to the next one
    following = list(PATH[PATH.index(page.name) + 1:][:1])
    assert following == [p.proto.page for p in at.get("page_link")][-1:], "the page's last link is the next page"
    # the shared sidebar is there on every page, with its keyed widgets
    assert at.segmented_control(key="source").value == "Sample"
    assert at.selectbox(key="model").value
    assert at.selectbox(key="image").value
    if page.default and hasattr(at, "_registered_pages"):  # (AppTest holds it from Streamlit 1.6x on, not 1.59)
        # the navigation tests/_pages.py reads is the one Streamlit registers, in this language
        registered = {info["url_pathname"]: info["page_name"] for info in at._registered_pages.values()}
        assert registered == {p.url_path: p.title for p in app_pages(lang)}
    if lang == "en":  # no English run may pick a Chinese string up
        assert not [t for t in page_texts(at, where="main") if _has_han(t)]
    else:
        _assert_speaks_chinese(at, page)


def test_overview_shows_the_models_predictions_and_rollout(open_app, figure):
    at = open_app()
    loaded, cap = reference_capture(at)
    probs = np.exp(cap.output[0].double().numpy() - cap.output[0].double().numpy().max())
    probs /= probs.sum()
    top5 = np.argsort(-probs, kind="stable")[:5]
    bars = figure(at, "overview.predictions")["data"][0]
    assert bars["type"] == "bar"
    np.testing.assert_allclose(values(bars["x"]), probs[top5], rtol=1e-4)
    assert bars["customdata"] == [loaded.labels[i] for i in top5]

    # rollout, recomputed by hand (Abnar & Zuidema: 0.5·A + 0.5·I, rows normalised, R_l = Â_l R_{l-1})
    joint = np.eye(cap.num_tokens)
    for layer in range(cap.num_layers):
        attn = cap.attention(layer)[0].double().numpy().mean(axis=0)  # (N, N)
        step = 0.5 * attn + 0.5 * np.eye(cap.num_tokens)
        joint = (step / step.sum(axis=1, keepdims=True)) @ joint
    layout = cap.layout
    expected = joint[layout.class_index, layout.patch_slice].reshape(layout.grid_size)  # (gh, gw)
    rollout = figure(at, "overview.rollout")
    assert len(rollout["frames"]) == cap.num_layers
    heat = next(t for t in rollout["data"] if t["type"] == "heatmap")
    np.testing.assert_allclose(values(heat["z"]), expected, rtol=1e-4, atol=1e-7)
    assert [m.value for m in at.metric][:3] == [str(layout.num_tokens), str(cap.num_layers), str(cap.num_heads)]


def test_choosing_another_sample_changes_what_is_shown(open_app, figure):
    from vitviz_app.samples import list_samples

    at = open_app()
    first = at.selectbox(key="image").value
    other = next(s.name for s in list_samples() if s.name != first)
    before = figure(at, "overview.rollout")
    at.selectbox(key="image").set_value(other).run()
    after = figure(at, "overview.rollout")
    assert not at.exception
    assert any(f"sample: {other}" in caption.value for caption in at.main.caption)
    assert _photo(before) != _photo(after)
    assert values(_heat(before)["z"]).tolist() != values(_heat(after)["z"]).tolist()


def test_a_shared_url_opens_the_same_view(open_app):
    # the URL holds ids ("0", "patch"); a link made before them held the shown labels, read too ("Head 0")
    for head, query in (("0", "patch"), ("Head 0", "A patch")):
        at = open_app("pages/attention.py", query={"image": "coffee", "attn_layer": "1", "attn_head": head,
                                                      "attn_query": query, "attn_row": "2", "attn_col": "3"})
        assert not at.exception
        assert at.selectbox(key="image").value == "coffee"
        keys = ("attn_layer", "attn_head", "attn_query", "attn_row", "attn_col")
        state = {key: at.session_state[key] for key in keys}
        assert state == {"attn_layer": 1, "attn_head": "0", "attn_query": "patch", "attn_row": 2, "attn_col": 3}
        # the class token first, then row 2 of the 8 × 8 grid, column 3
        assert component_data(at, "attention_explorer")["committed"]["token"] == 1 + 2 * 8 + 3


def test_bad_values_in_a_url_fall_back_to_defaults(open_app):
    at = open_app("pages/attention.py", query={"image": "no_such_photo", "attn_layer": "999",
                                                  "model": "not-a-model"})
    assert not at.exception
    assert not at.error
    assert at.selectbox(key="image").value != "no_such_photo"
    committed = component_data(at, "attention_explorer")["committed"]
    assert at.session_state["attn_layer"] == committed["layer"] == 3, "the last layer of the four"


def test_choices_persist_across_pages(open_app):
    at = open_app("pages/attention.py")
    at.selectbox(key="image").set_value("rocket")
    at.session_state["attn_layer"] = 2  # as the explorer's commit sets it
    at.run()
    at.switch_page("pages/rollout.py").run()
    assert at.selectbox(key="image").value == "rocket"
    at.switch_page("pages/attention.py").run()
    assert at.session_state["attn_layer"] == component_data(at, "attention_explorer")["committed"]["layer"] == 2
    assert at.selectbox(key="image").value == "rocket"


def _heat(spec: dict) -> dict:
    return next(t for t in spec["data"] if t["type"] == "heatmap")


def _photo(spec: dict) -> str:
    return next(t["source"] for t in spec["data"] if t["type"] == "image")


@pytest.mark.parametrize("sample,expected", [("shapes_triangle_photo", "triangle"), ("shapes_cross_flat", "cross"),
                                             ("shapes_heart_sketch", "heart"), ("shapes_star_outline", "star")])
def test_new_style_samples_are_recognised_by_the_offline_model(open_app, figure, app_model, sample, expected):
    """The gallery's drawn and photographed shapes (issue 13): the shipped model names them on the Overview."""
    if app_model != "vitviz-shapes":
        pytest.skip("needs the shipped vitviz-shapes weights")
    at = open_app(query={"model": "vitviz-shapes", "image": sample})
    assert not at.exception
    bars = figure(at, "overview.predictions")["data"][0]
    assert bars["customdata"][0] == expected


LAYOUTS = [  # (timm model, its arguments, its prefix tokens): token layouts that broke well-known tools
    ("test_vit2", {"num_classes": 10}, ("reg0",)),  # one register, no class token, average pooling
    ("test_vit3", {"num_classes": 10}, ("reg0",)),  # attention pooling ('map')
    ("test_vit", {"num_classes": 0}, ("cls",)),  # no classifier head: features only
    ("test_vit", {"num_classes": 10, "img_size": (64, 96)}, ("cls",)),  # a non-square grid
    ("deit_tiny_distilled_patch16_224", {"num_classes": 10, "img_size": 64}, ("cls", "dist")),  # class + distillation
]


@pytest.mark.parametrize("name, model_args, prefix", LAYOUTS,
                         ids=["registers-avg-pool", "attention-pool", "no-head", "non-square", "distilled"])
def test_every_page_works_in_chinese_on_every_token_layout(open_app, swap_bundled, name, model_args, prefix):
    """The bundled model swapped for timm's tiny test models: every page runs, speaks Chinese only, and reads
    the model's own prefix tokens (English and Chinese share the code; the language is the harder case)."""
    swap_bundled(name, **model_args)
    at = open_app(query={"lang": "zh"})
    assert_chinese(at, "overview")
    if not model_args.get("num_classes"):  # no predictions: a note says why
        with language("zh"):
            note = _("This model has no classifier head (self-supervised features), so there are no class "
                     "predictions. Attention maps and rollout still show where it looks.")
        assert note in [i.value for i in at.info]
    for page in PAGES:
        if page.file:
            at.switch_page(page.file).run()
            assert_chinese(at, page.name)
        if page.file == "pages/attention.py":  # the query choices are the model's own prefix tokens
            with language("zh"):
                names = [_("Register {index}").format(index=p[3:]) if p.startswith("reg") else
                         _({"cls": "Class token", "dist": "Distillation token"}[p]) for p in prefix]
            labels = component_data(at, "attention_explorer")["text"]["prefix_labels"]  # the explorer's buttons
            assert list(labels) == list(prefix) and list(labels.values()) == names
        if page.file == "pages/rollout.py":  # without a class token, rollout says what it read out
            with language("zh"):
                readout = _("class token") if "cls" in prefix else _(
                    "mean over patch queries (the model has no class token)")
            assert any(readout in c.value for c in at.caption), [c.value for c in at.caption]
