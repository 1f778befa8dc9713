"""The catalogue: the curated ViTs the app offers, each with what it is good for."""
from __future__ import annotations

from dataclasses import dataclass

from vitviz.i18n import N_

__all__ = ["BUNDLED_CNN", "BUNDLED_MODEL", "CATALOGUE", "CNN_EXAMPLES", "ModelSpec"]

BUNDLED_MODEL = "vitviz-shapes"
BUNDLED_CNN = "vitviz-shapes-cnn"
"""The small CNN trained like vitviz-shapes (``vitviz.shapes.cnn``), set beside it on the ViT vs CNN page."""
CNN_EXAMPLES = ("resnet18.a1_in1k", "resnet50.a1_in1k", "convnext_atto.d2_in1k", "efficientnet_b0.ra_in1k")
"""timm CNNs with ImageNet weights on the hub, offered as examples (any timm CNN loads by name)."""


@dataclass(frozen=True)
class ModelSpec:
    """A curated catalogue entry.

    Attributes:
        key: Friendly name shown in the app (a name: never translated).
        title: One-line description, in English (marked ``N_()``: show it with ``_(spec.title)``).
        timm_name: timm model name with its pretrained tag.
        patch_size: Patch size in pixels.
        input_size: Native square input size in pixels.
        tokens: Token layout, e.g. ``'cls + 14×14 patches'``, in English (show it with ``_(spec.tokens)``).
        description: What this model is good for, in English (show it with ``_(spec.description)``).
        imagenet: Whether its head predicts ImageNet-1k classes.
    """

    key: str
    title: str
    timm_name: str
    patch_size: int
    input_size: int
    tokens: str
    description: str
    imagenet: bool = True


def _spec(key: str, title: str, timm_name: str, patch: int, size: int, tokens: str, description: str,
          imagenet: bool = True) -> tuple[str, ModelSpec]:
    return key, ModelSpec(key, title, timm_name, patch, size, tokens, description, imagenet)


CATALOGUE: dict[str, ModelSpec] = dict(
    [
        _spec("ViT-S/16 (AugReg)", N_("ViT-Small, 16 px patches, ImageNet-21k → 1k"),
              "vit_small_patch16_224.augreg_in21k_ft_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("The classic ViT at a laptop-friendly size (Steiner et al. 2021, 'How to train your ViT').")),
        _spec("ViT-Ti/16 (AugReg)", N_("ViT-Tiny, 16 px patches, ImageNet-21k → 1k"),
              "vit_tiny_patch16_224.augreg_in21k_ft_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("Smallest AugReg ViT: 3 heads per layer, quick to explore.")),
        _spec("ViT-S/32 (AugReg)", N_("ViT-Small, 32 px patches, ImageNet-21k → 1k"),
              "vit_small_patch32_224.augreg_in21k_ft_in1k", 32, 224, N_("cls + 7×7 patches"),
              N_("Coarse 7×7 grid: compare with S/16 to see what patch size changes.")),
        _spec("ViT-B/16 (AugReg)", N_("ViT-Base, 16 px patches, ImageNet-21k → 1k"),
              "vit_base_patch16_224.augreg_in21k_ft_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("The ViT paper's reference model: 12 layers × 12 heads.")),
        _spec("ViT-B/32 (AugReg)", N_("ViT-Base, 32 px patches, ImageNet-21k → 1k"),
              "vit_base_patch32_224.augreg_in21k_ft_in1k", 32, 224, N_("cls + 7×7 patches"),
              N_("ViT-Base with a 7×7 grid.")),
        _spec("DeiT-S", N_("DeiT-Small, ImageNet-1k only"),
              "deit_small_patch16_224.fb_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("Data-efficient ViT trained on ImageNet-1k alone (Touvron et al. 2021).")),
        _spec("DeiT-S distilled", N_("DeiT-Small with a distillation token"),
              "deit_small_distilled_patch16_224.fb_in1k", 16, 224, N_("cls + dist + 14×14 patches"),
              N_("Two prefix tokens: class and distillation; the head averages both.")),
        _spec("DeiT-III-S", N_("DeiT III Small, ImageNet-1k"),
              "deit3_small_patch16_224.fb_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("DeiT III recipe (Touvron et al. 2022) with LayerScale.")),
        _spec("DINO ViT-S/8", N_("Self-supervised DINO, 8 px patches (no classifier)"),
              "vit_small_patch8_224.dino", 8, 224, N_("cls + 28×28 patches"),
              N_("DINO's famous attention maps that segment objects (Caron et al. 2021). Features only."), False),
        _spec("DINO ViT-S/16", N_("Self-supervised DINO, 16 px patches (no classifier)"),
              "vit_small_patch16_224.dino", 16, 224, N_("cls + 14×14 patches"),
              N_("DINO at 16 px: compare its class-token attention with the supervised ViT-S/16."), False),
        _spec("DINOv2-S/14", N_("DINOv2 Small, 14 px patches (no classifier)"),
              "vit_small_patch14_dinov2.lvd142m", 14, 518, N_("cls + 37×37 patches"),
              N_("DINOv2 (Oquab et al. 2023); shows high-norm artifact tokens in its attention."), False),
        _spec("DINOv2-S/14 + registers", N_("DINOv2 Small with 4 register tokens (no classifier)"),
              "vit_small_patch14_reg4_dinov2.lvd142m", 14, 518, N_("cls + 4 registers + 37×37 patches"),
              N_("'Vision Transformers Need Registers' (Darcet et al. 2024): the artifacts move to registers."),
              False),
        _spec("FlexiViT-S", N_("FlexiViT Small, trained for many patch sizes"),
              "flexivit_small.1200ep_in1k", 16, 240, N_("cls + 15×15 patches"),
              N_("Made for the patch-size slider (Beyer et al. 2023): good predictions from 8 to 48 px.")),
        _spec(BUNDLED_MODEL, N_("vitviz shapes ViT, shipped with vitviz (works offline)"),
              BUNDLED_MODEL, 0, 0, N_("cls + patches (several patch sizes)"),
              N_("A small ViT we trained on generated shapes: attention you can check against the object."),
              False),
    ]
)
