"""The library speaks the caller's language: every figure builder's texts, and the messages of its errors.

Each figure is built under ``vitviz.i18n.language("zh")`` and every text a reader sees (title and subtitle,
axis and colour-bar titles, hover templates, legend names, annotations, slider prefix, frame titles) must be
Chinese or a bare name / number; its placeholders must be filled in. The same builder in English (the
default) gives the English text, so the Chinese comes from the catalogue and not from a constant.
"""
from __future__ import annotations

import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import vitviz.figures as F
from vitviz import hub, images, models
from vitviz.i18n import Message, get_language, language
from vitviz.images import InputGeometry
from vitviz.layout import TokenLayout
from vitviz.models import loading as model_loading
from vitviz.models import weights as model_weights

LAYOUT = TokenLayout(("cls", "reg0"), (3, 4), (16, 16), (48, 64))
PHOTO = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
GEOMETRY = InputGeometry((60, 80), (48, 64), (0.0, 0.0, 60.0, 80.0))

_CJK = re.compile(r"[\u3400-\u9fff]")
_PLOTLY_FIELD = re.compile(r"%\{[^}]*\}|<[^>]*>")
_LEFT_PLACEHOLDER = re.compile(r"(?<!%)\{[A-Za-z_][A-Za-z_0-9]*(?:[:!][^}]*)?\}")
# Names that stay English in a Chinese figure: prefix tokens, metrics, method names passed in by the caller.
_NAMES = {"cls", "reg0", "auc", "rgb", "pca", "spearman", "px", "grad", "cam", "attnlrp"}


def _title(obj) -> str | None:
    title = getattr(obj, "title", None)
    return None if title is None else title.text


def figure_texts(fig) -> list[str]:
    """Every text of ``fig`` a reader sees."""
    layout = fig.layout
    texts = [layout.title.text, layout.title.subtitle.text if layout.title.subtitle else None]
    for axis in [*fig.select_xaxes(), *fig.select_yaxes()]:
        texts.append(_title(axis))
    for trace in fig.data:
        texts += [getattr(trace, "hovertemplate", None), getattr(trace, "name", None)]
        colorbar = getattr(trace, "colorbar", None)
        texts.append(_title(colorbar) if colorbar is not None else None)
    texts += [a.text for a in layout.annotations]
    texts += [s.currentvalue.prefix for s in layout.sliders]
    texts += [frame.layout.title.text for frame in fig.frames if frame.layout and frame.layout.title]
    texts.append(layout.legend.title.text if layout.legend and layout.legend.title else None)
    return [t for t in texts if isinstance(t, str) and t.strip()]


def english_words(text: str) -> list[str]:
    """Ordinary English words of ``text`` (Plotly template fields, HTML tags and names left out)."""
    words = re.findall(r"[A-Za-z][A-Za-z0-9_-]*", _PLOTLY_FIELD.sub(" ", text))
    return [w for w in words if len(w) >= 3 and w.isalpha() and w.lower() not in _NAMES]


def band(seeds=3):
    fractions = np.linspace(0, 1, 5)
    return SimpleNamespace(fractions=fractions, high=np.full(5, 0.6), low=np.full(5, 0.2), mean=np.full(5, 0.4),
                           seeds=tuple(range(seeds)), auc_mean=0.4)


def faithfulness(auc):
    curve = SimpleNamespace(fractions=np.linspace(0, 1, 5), probabilities=np.linspace(0.9, 0.1, 5), auc=auc)
    return SimpleNamespace(positive=curve, negative=curve, removal="tokens", fractions=curve.fractions)


def sanity(flagged, reads_head):
    return SimpleNamespace(steps=("head", "block 1", "block 0"), correlations=np.array([0.9, 0.5, 0.1]),
                           flagged=flagged, reads_head=reads_head, threshold=0.5)


BUILDERS = {
    "overlay": lambda: F.overlay_figure(np.random.default_rng(1).random((3, 4)), PHOTO, GEOMETRY, LAYOUT),
    "patch_grid": lambda: F.patch_grid_figure(PHOTO, GEOMETRY, LAYOUT),
    "patch_sequence": lambda: F.patch_sequence_figure(np.zeros((12, 16, 16, 3), np.uint8), LAYOUT),
    "position_similarity": lambda: F.position_similarity_figure(np.random.default_rng(2).random((3, 4, 3, 4)),
                                                                max_tiles=2),
    "position_tile": lambda: F.position_tile_figure(np.random.default_rng(2).random((3, 4, 3, 4)), 1, 2),
    "embedding_filters": lambda: F.embedding_filters_figure(np.zeros((4, 16, 16, 3), np.uint8),
                                                            np.array([0.4, 0.3, 0.2, 0.1])),
    "attention_map": lambda: F.attention_map_figure(np.full(14, 1 / 14), PHOTO, GEOMETRY, LAYOUT, query=5, layer=2,
                                                    head="max"),
    "attention_map_head": lambda: F.attention_map_figure(np.full(14, 1 / 14), PHOTO, GEOMETRY, LAYOUT, query=0,
                                                         head=1),
    "attention_grid": lambda: F.attention_grid_figure(np.random.default_rng(3).random((2, 3, 3, 4)), normalize=True),
    "attention_distance": lambda: F.attention_distance_figure(np.random.default_rng(4).random((4, 3)) * 50),
    "rollout": lambda: F.rollout_figure(np.random.default_rng(5).random((3, 3, 4)), PHOTO, GEOMETRY, LAYOUT,
                                        head_fusion="max", discard_ratio=0.5),
    "gradient_rollout": lambda: F.rollout_figure(np.random.default_rng(5).random((2, 3, 4)), PHOTO, GEOMETRY, LAYOUT,
                                                 query="mean", method="gradient_rollout"),
    "relevance_maps": lambda: F.relevance_maps_figure({"Grad-CAM": np.ones((3, 4)), "AttnLRP": np.eye(3, 4)}, PHOTO,
                                                      GEOMETRY, LAYOUT),
    "faithfulness": lambda: F.faithfulness_figure({"Grad-CAM": faithfulness(0.3)}, {"most": band(), "least": band()}),
    "sanity": lambda: F.sanity_figure({"Grad-CAM": sanity(True, False), "AttnLRP": sanity(False, True)}),
    "token_norms": lambda: F.token_norm_figure(np.random.default_rng(6).random((3, 14)), LAYOUT, layer=1),
    "feature_pca": lambda: F.feature_pca_figure(np.zeros((3, 4, 3), np.uint8), PHOTO, GEOMETRY, LAYOUT),
    "predictions": lambda: F.predictions_figure([("tabby cat", 0.7), ("tiger cat", 0.2)]),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_figure_speaks_chinese_with_its_placeholders_filled(name):
    with language("zh"):
        fig = BUILDERS[name]()
    texts = figure_texts(fig)
    assert fig.layout.title.text or name in ("overlay", "relevance_maps", "faithfulness", "sanity")
    english = [t for t in texts if english_words(t) and not _CJK.search(t)]
    assert not english, f"{name}: still English: {english}"
    left = [t for t in texts if _LEFT_PLACEHOLDER.search(_PLOTLY_FIELD.sub(" ", t))]
    assert not left, f"{name}: placeholders not filled: {left}"
    assert any(_CJK.search(t) for t in texts), f"{name}: no Chinese at all"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_the_same_figure_is_english_by_default(name):
    assert get_language() == "en"
    texts = figure_texts(BUILDERS[name]())
    assert not any(_CJK.search(t) for t in texts), name


def test_chinese_figure_texts_say_what_the_english_ones_say():
    """Spot checks against hand-written expectations (values in the right places)."""
    with language("zh"):
        attention = F.attention_map_figure(np.full(14, 1 / 14), PHOTO, GEOMETRY, LAYOUT, query=7, layer=4, head=2)
        grid = F.patch_grid_figure(PHOTO, GEOMETRY, LAYOUT)
        rollout = F.rollout_figure(np.ones((2, 3, 4)), PHOTO, GEOMETRY, LAYOUT, start_layer=3, head_fusion="max")
        predictions = F.predictions_figure([("tabby cat", 0.7)])
    assert attention.layout.title.text == "第 4 层，注意力头 2：图像块（1, 1） 的注意力"
    assert attention.data[1].hovertemplate.startswith("第 %{customdata[0]} 行，第 %{customdata[1]} 列：")
    assert attention.layout.xaxis.title.text == "x（像素）"
    assert grid.layout.title.text == "3×4 = 12 个 16×16 像素的图像块"
    assert [f.layout.title.text for f in rollout.frames] == [
        "Attention Rollout，第 3 层（类别词元所在行；最大值融合）",
        "Attention Rollout，第 3–4 层（类别词元所在行；最大值融合）"]
    assert predictions.layout.title.text == "最可能的预测" and predictions.layout.xaxis.title.text == "概率"


def test_prefix_names_and_caller_texts_stay_as_given():
    """Token names are names and a caller's title is the caller's: the catalogue never touches them."""
    with language("zh"):
        fig = F.attention_map_figure(np.full(14, 1 / 14), PHOTO, GEOMETRY, LAYOUT, query=0)
        titled = F.attention_grid_figure(np.ones((1, 1, 3, 4)), title="我的标题")
    assert fig.layout.title.text == "各注意力头的平均：cls 的注意力"
    assert "cls: " in fig.layout.title.subtitle.text and "reg0: " in fig.layout.title.subtitle.text
    assert titled.layout.title.text == "我的标题"


# --------------------------------------------------------------------------------------------- messages


def _image_error(data: bytes, **kwargs) -> str:
    with pytest.raises(images.ImageError) as info:
        images.load_image(data, **kwargs)
    return str(info.value)


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_errors_are_chinese_with_their_values_filled_in():
    with language("zh"):
        empty = _image_error(b"")
        pdf = _image_error(b"%PDF-1.4\n...")
        html = _image_error(b"<!DOCTYPE html><html></html>")
        large = _image_error(_png(300, 200), max_pixels=10_000)
        damaged = _image_error(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
        thin = images.preprocess._extreme_aspect_message((3, 9000))
    assert empty == "文件是空的（0 字节）。请选择一个图像文件。"
    assert pdf.startswith("这看起来是 PDF 文档，不受支持。") and "支持的格式：JPEG, PNG" in pdf
    assert "。支持的格式" in pdf, "Chinese sentences follow each other without a space"
    assert html.startswith("这个文件是网页（HTML），不是图像。")
    assert large == "这张图像太大了（300×200 像素，0 百万像素）。上限是 0.01 百万像素。请先把它缩小后再试。"
    assert damaged == "这个 PNG 文件已损坏：无法读取它的文件头。请换一个副本试试。"
    assert thin.startswith("这张图像太细长了（9000×3 像素）")
    for message in (empty, pdf, html, large, damaged, thin):
        assert not _LEFT_PLACEHOLDER.search(message), message


def test_image_errors_stay_english_by_default():
    assert _image_error(b"").startswith("The file is empty (0 bytes).")
    assert "Supported formats: JPEG, PNG" in _image_error(b"%PDF-1.4\n...")


def _model_error(call) -> str:
    with pytest.raises(models.ModelError) as info:
        call()
    return str(info.value)


def test_model_errors_are_chinese_with_their_values_filled_in(tmp_path):
    import torch

    with language("zh"):
        no_name = _model_error(lambda: models.resolve_name(""))
        family = _model_error(lambda: models.resolve_name("resnet18"))
        hub_id = _model_error(lambda: models.resolve_name("hf-hub:not a repo"))
        missing = _model_error(lambda: models.load_state_dict(None, tmp_path / "nowhere.pth"))
        empty = tmp_path / "empty.pth"
        empty.write_bytes(b"")
        empty_file = _model_error(lambda: models.load_state_dict(None, empty))
        model = torch.nn.Linear(2, 3)
        wrong = _model_error(lambda: model_weights._check_fit(model, {"weight": torch.zeros(3, 5)}))
    assert no_name == "没有给出模型名称。"
    assert family.startswith("'resnet18' 是 resnet 模型，不是普通的 Vision Transformer")
    assert hub_id.startswith("'hf-hub:not a repo' 不是有效的 Hugging Face 模型 ID")
    assert missing == "权重文件 'nowhere.pth' 不存在。"
    assert empty_file == "权重文件是空的。"
    assert wrong.startswith("这些权重与 Linear 不匹配：1 个张量的形状不对（例如 weight (3, 5) vs (3, 2)）；缺少 1 个")
    for message in (no_name, family, hub_id, missing, empty_file, wrong):
        assert not _LEFT_PLACEHOLDER.search(message), message


def test_a_shared_models_notice_is_read_in_each_readers_language():
    """One loaded model serves sessions of every language: its notice is made when it is read."""
    notice = model_loading._fallback_notice("DINO ViT-S/16", "vit_small_patch16_224.dino")
    loaded = SimpleNamespace(message=notice)
    english = models.LoadedModel.notice.fget(loaded)
    with language("zh"):
        chinese = models.LoadedModel.notice.fget(loaded)
    assert english.startswith("You asked for DINO ViT-S/16 (vit_small_patch16_224.dino), but the Hugging Face hub")
    assert "timm.create_model('vit_small_patch16_224.dino', pretrained=True)" in english
    assert chinese.startswith("你选择了 DINO ViT-S/16 (vit_small_patch16_224.dino)，但无法连接 Hugging Face Hub")
    assert "timm.create_model('vit_small_patch16_224.dino', pretrained=True)" in chinese
    assert "要使用它" in chinese and not _LEFT_PLACEHOLDER.search(chinese)


def test_a_download_failure_is_re_raised_in_the_waiters_language():
    """The download thread speaks English; the message it keeps is a Notice, re-made for each waiter."""
    job = SimpleNamespace(endpoint="https://mirror.example", repo_id="timm/x", filenames=("a.safetensors", "b.bin"),
                          revision=None)

    not_found = hub._remote_entry_not_found()
    error = hub.DownloadError(hub._reason(not_found.__new__(not_found), job))
    assert str(error) == "timm/x on mirror.example has no a.safetensors or b.bin."
    with language("zh"):
        again = hub.DownloadError(error.notice or str(error))
        progress = hub.Progress("timm/x", "model.safetensors", done=2_000_000, total=4_000_000).describe()
    assert str(again) == "mirror.example 上的 timm/x 没有 a.safetensors 或 b.bin。"
    assert progress.startswith("model.safetensors：2.0 MB / 4.0 MB")


def test_the_warning_of_an_offline_fallback_is_in_the_callers_language(monkeypatch):
    monkeypatch.setattr(model_loading, "hub_reachable", lambda timeout: False)
    monkeypatch.setattr(model_loading, "_cached_hub_file", lambda name: None)
    monkeypatch.setattr(model_loading, "_check_size", lambda *a, **k: None)
    monkeypatch.setattr(model_loading, "_bundled", lambda device, requested, notice, fallback=False: notice)
    with language("zh"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notice = models.load_model("vit_small_patch16_224.dino")
    (warning,) = [w for w in caught if issubclass(w.category, models.FallbackWarning)]
    assert str(warning.message).startswith("你选择了 vit_small_patch16_224.dino")
    assert isinstance(notice, Message) and str(notice).startswith("You asked for")
