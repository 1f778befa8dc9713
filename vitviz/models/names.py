"""Names: a catalogue key, a timm name or an ``hf-hub:`` id, checked to be a ViT vitviz can explain."""
from __future__ import annotations

import difflib

from vitviz.i18n import _, sentences

from .catalogue import CATALOGUE, ModelSpec
from .errors import ModelError

__all__ = ["resolve_cnn_name", "resolve_name"]

_SUPPORTED_MODULES = {
    "timm.models.vision_transformer": "ViT / DeiT-III / DINO / DINOv2 / FlexiViT",
    "timm.models.deit": "DeiT",
    "timm.models.eva": "EVA",
    "timm.models.vision_transformer_relpos": "ViT with relative position bias",
}


_CNN_MODULES = frozenset(f"timm.models.{m}" for m in (
    "resnet", "resnetv2", "convnext", "efficientnet", "mobilenetv3", "mobilenetv5", "regnet", "rexnet",
    "densenet", "vgg", "byobnet", "nfnet", "ghostnet", "dla", "dpn", "res2net", "resnest", "senet",
    "inception_v3", "xception", "xception_aligned", "hrnet", "cspnet", "hgnet", "repvit",
    "mobileone", "tresnet", "selecsls", "vovnet", "sknet", "rdnet", "inception_next", "convmixer",
))
"""timm modules whose models are convolutional networks with ``feature_info`` (what the ViT vs CNN page
measures); a timm module not listed here is refused with a clear message."""
_CNN_HINT = "resnet18.a1_in1k, convnext_atto.d2_in1k, efficientnet_b0.ra_in1k"

_EXAMPLES = "vit_small_patch16_224.augreg_in21k_ft_in1k, deit_small_patch16_224, vit_small_patch14_dinov2"


def _supported_names() -> list[str]:
    import timm  # timm: heavy, imported on first use

    return timm.list_models(["vit_*", "deit*", "eva*", "flexivit*", "test_vit*"])


def _cnn_names() -> list[str]:
    import timm  # timm: heavy, imported on first use

    return timm.list_models(["resnet*", "convnext*", "efficientnet*"])


def resolve_name(name: str) -> tuple[str, ModelSpec | None]:
    """Map a catalogue key or a timm / ``hf-hub:`` name to a timm name, checking it is a ViT.

    Raises:
        ModelError: Unknown name, or an architecture vitviz does not explain.
    """
    name = (name or "").strip()
    if not name:
        raise ModelError(_("No model name given."))
    if name in CATALOGUE:
        return CATALOGUE[name].timm_name, CATALOGUE[name]
    for spec in CATALOGUE.values():
        if name == spec.timm_name:
            return name, spec
    if name.startswith(("hf-hub:", "hf_hub:")):
        _check_hub_id(name.split(":", 1)[1])
        return name, None
    _check_timm_name(name, _SUPPORTED_MODULES, _supported_names, _EXAMPLES, lambda family: _(
        "'{name}' is a {family} model, not a plain Vision Transformer: vitviz explains ViT-family "
        "models with global self-attention ({supported}). Try for example {examples}."
    ).format(name=name, family=family, supported=", ".join(_SUPPORTED_MODULES.values()), examples=_EXAMPLES))
    return name, None


def _check_timm_name(name: str, modules, candidates, examples: str, wrong_family) -> None:
    """Check that timm knows ``name``'s architecture, that it comes from one of ``modules`` (timm's model
    modules) and that its weights tag exists.

    Args:
        candidates: called for the names a misspelt architecture is matched against ("Did you mean ...?").
        examples: names to suggest when none is close.
        wrong_family: ``family -> message`` for an architecture from another module.
    """
    import timm  # timm: heavy, imported on first use
    from timm.models import model_entrypoint

    arch, _dot, tag = name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, candidates(), n=3, cutoff=0.6)
        hint = (_("Did you mean {names}?").format(names=", ".join(close)) if close
                else _("Try for example {examples}.").format(examples=examples))
        unknown = _("Unknown model '{name}': timm has no such architecture.").format(name=name)
        raise ModelError(sentences(unknown, hint))
    module = model_entrypoint(arch).__module__
    if module not in modules:
        raise ModelError(wrong_family(module.rsplit(".", 1)[-1].replace("_", " ")))
    if "." in name:
        _check_tag(name, arch, tag)


def resolve_cnn_name(name: str) -> str:
    """Check a timm or ``hf-hub:`` name of a convolutional network and return it (``resnet18``,
    ``convnext_atto.d2_in1k``, ``hf-hub:timm/resnet18.a1_in1k``).

    Raises:
        ModelError: Unknown name, unknown weights tag, or a model that is not a CNN (a ViT is chosen in the
            sidebar).
    """
    name = (name or "").strip()
    if not name:
        raise ModelError(_("No model name given."))
    if name.startswith(("hf-hub:", "hf_hub:")):
        _check_hub_id(name.split(":", 1)[1])
        return name
    _check_timm_name(name, _CNN_MODULES, _cnn_names, _CNN_HINT, lambda family: _(
        "'{name}' is a {family} model, not a convolutional network: here a CNN is set beside the "
        "ViT (choose a ViT in the sidebar). Try for example {examples}."
    ).format(name=name, family=family, examples=_CNN_HINT))
    return name


def _check_hub_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id  # huggingface_hub: heavy

    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise HFValidationError("expected owner/name")
    except HFValidationError as exc:
        raise ModelError(_(
            "'hf-hub:{repo_id}' is not a Hugging Face model id: write it as hf-hub:owner/name, "
            "e.g. hf-hub:timm/vit_small_patch16_224.augreg_in21k_ft_in1k."
        ).format(repo_id=repo_id)) from exc


def _check_tag(name: str, arch: str, tag: str) -> None:
    import timm  # timm: heavy, imported on first use

    tags = sorted(t.partition(".")[2] for t in timm.list_models(arch, pretrained=True) if t.startswith(arch + "."))
    if tag not in tags:
        known = (_("Its weights are: {tags}.").format(tags=", ".join(tags[:6])) if tags
                 else _("timm has no pretrained weights for it."))
        message = _("'{name}': timm knows {arch} but no weights tagged '{tag}'.").format(name=name, arch=arch, tag=tag)
        raise ModelError(sentences(message, known))
