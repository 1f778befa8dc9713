"""Notebook entry point: a ViT and a CNN measured the same way on the same image.

    >>> import vitviz
    >>> cmp = vitviz.compare_cnn()                    # the bundled pair, on a bundled sample
    >>> cmp.vit_erf.radius50, cmp.cnn_erf.radius50     # how far each depth reaches (pixels)
    >>> cmp.cnn_theory.size                            # the CNN's theoretical receptive field per stage
    >>> cmp.cka, cmp.cka_images                        # do they see alike? over how many images
    >>> ref = vitviz.comparison.pair_reference()        # what does not depend on the image, once per pair
    >>> ref.compare(image)                              # the same numbers as compare_cnn(image=image), faster

What is measured (the page "ViT vs CNN" shows the same numbers):

- **effective receptive field** of the centre unit at every depth (Luo et al. 2016,
  :mod:`vitviz.analysis.receptive_field`), averaged over the image and ``erf_images - 1`` generated shapes;
  the CNN's theoretical field per stage; the ViT's mean attention distance per block (Dosovitskiy et al.
  2021), averaged over heads and the same images;
- **linear CKA** between every ViT depth and every CNN depth (Kornblith et al. 2019; Raghu et al. 2021),
  over the image, the bundled sample pictures and generated shapes;
- **cost**: parameters, FLOPs and time per forward pass, and the ViT's cost at every patch size.

Everything but the image is fixed per pair: the generated shapes and sample pictures the averages and the CKA
are over, the theoretical fields, the costs. :func:`pair_reference` measures those once (a
:class:`PairReference`), and its :meth:`~PairReference.compare` adds one image: its own gradients, attention
distances and features, pooled with the fixed set's. :func:`compare_cnn` is the two in one call.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitviz.images import data_config, load_image, prepare_input
from vitviz.shapes.families import TRAIN_MIX

__all__ = ['DATA_CURVES_PATH', 'CnnComparison', 'PairReference', 'compare_cnn', 'comparison_images',
           'pair_reference', 'read_data_curves']

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
DATA_CURVES_PATH = Path(__file__).resolve().parent / 'assets' / 'data_curves.json'
"""Accuracy against training-set size for the small ViT and CNN, written by ``python scripts/data_curves.py``."""


@dataclass(frozen=True, eq=False)
class CnnComparison:
    """A ViT and a CNN on the same image, measured the same way.

    Attributes:
        vit_erf: effective receptive field of the ViT's centre patch token at every depth (embedding, blocks).
        cnn_erf: the same for the CNN's centre unit at every feature level (stem, stages).
        vit_theory: the ViT's theoretical field (its patch, then the whole input).
        cnn_theory: the CNN's theoretical field per depth, from its kernels, strides and dilations.
        attention_distance: ``(L,)`` the ViT's mean attention distance per block in input pixels, mean over
            heads and the ERF images (depth ``l + 1`` of ``vit_erf``).
        attention_distance_heads: ``(L, H)`` the same per head.
        cka: ``(Lv, Lc)`` linear CKA between every ViT depth and every CNN depth.
        cka_images: how many images the CKA is over.
        cka_sources: how many of them came from where: ``{'image': 1, 'samples': ..., 'shapes': ...}``.
        vit_cost: the ViT's parameters, FLOPs and time at its input size.
        cnn_cost: the CNN's.
        patch_costs: the ViT's cost at each patch size.
    """

    vit_erf: Any
    cnn_erf: Any
    vit_theory: Any
    cnn_theory: Any
    attention_distance: np.ndarray
    attention_distance_heads: np.ndarray
    cka: np.ndarray
    cka_images: int
    cka_sources: dict[str, int]
    vit_cost: Any
    cnn_cost: Any
    patch_costs: tuple


def _as_image(image: Any):
    """An RGB PIL image from a path, bytes, file object, PIL image or uint8 ``(H, W, 3)`` array."""
    if isinstance(image, Image.Image):
        return image if image.mode == 'RGB' else image.convert('RGB')
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f'expected a uint8 (H, W, 3) array, got {image.dtype} {image.shape}')
        return Image.fromarray(image)
    return load_image(image)


def comparison_images(image: Any = None, *, samples: bool = True, shapes: int = 32, seed: int = 0
                      ) -> tuple[list, dict[str, int]]:
    """The images a comparison runs on: the user's image, the bundled samples, generated shapes.

    Args:
        image: the user's image (first), or None.
        samples: include every picture in ``vitviz/assets/samples``.
        shapes: generated shapes images in the training mix of style families (split 5 of ``seed``, a split
            that no training or evaluation uses).
        seed: seed of the generated shapes.

    Returns:
        RGB PIL images and how many came from each source.
    """
    # torch: the shapes data set and model modules load it
    from vitviz.shapes.dataset import mix_batch
    from vitviz.shapes.model import ASSETS_DIR

    images, sources = [], {}
    if image is not None:
        images.append(_as_image(image))
        sources['image'] = 1
    if samples:
        paths = sorted(p for p in (ASSETS_DIR / 'samples').iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images += [_as_image(p) for p in paths]
        sources['samples'] = len(paths)
    if shapes:
        pixels, _, _ = mix_batch(seed, shapes, TRAIN_MIX, split=5)  # (shapes, 96, 96, 3)
        images += [Image.fromarray(p) for p in pixels]
        sources['shapes'] = shapes
    return images, sources


def _inputs(model: Any, images: Sequence) -> Any:
    """The model's own preprocessing (timm's eval transform) of each image, stacked: ``(n, 3, H, W)``."""
    import torch  # torch: loaded when a comparison runs, not on import

    config = data_config(model)
    device = next(model.parameters()).device  # the model's own device (a GPU server's)
    return torch.cat([prepare_input(im, config)[0] for im in images]).to(device)


def _input_size(model: Any) -> tuple[int, int]:
    """``(H, W)`` of the model's own preprocessing (timm's data config)."""
    return tuple(int(v) for v in data_config(model)['input_size'][-2:])


def _default_patch_sizes(size: tuple[int, int]) -> tuple[int, ...]:
    return tuple(p for p in (8, 12, 14, 16, 24, 32) if size[0] % p == 0 and size[1] % p == 0)


@dataclass(frozen=True, eq=False)
class PairReference:
    """What a comparison of a ViT and a CNN measures whatever the image, computed once (:func:`pair_reference`).

    Attributes:
        vit: the ViT, in eval mode; cnn: the CNN.
        seed: seed of the generated shapes.
        vit_theory, cnn_theory, vit_cost, cnn_cost, patch_costs: as in :class:`CnnComparison`.
        vit_mass, cnn_mass: the summed input gradients of the generated shapes the receptive fields average over.
        distance_sum: ``(L, H)`` their mean attention distances, summed over those images.
        vit_bank, cnn_bank: the CKA's fixed images (samples, generated shapes) seen by each model.
        cka_sources: how many of the fixed CKA images came from where.
    """

    vit: Any
    cnn: Any
    seed: int
    vit_theory: Any
    cnn_theory: Any
    vit_cost: Any
    cnn_cost: Any
    patch_costs: tuple
    vit_mass: Any
    cnn_mass: Any
    distance_sum: np.ndarray
    vit_bank: Any
    cnn_bank: Any
    cka_sources: dict[str, int]

    def compare(self, image: Any = None) -> CnnComparison:
        """The pair on ``image`` (a path, bytes, file object, PIL image or uint8 array; default the bundled star):
        the image's own measurements pooled with the fixed images' (as if all were run together)."""
        # torch: loaded when a comparison runs, not on `import vitviz`
        import torch

        from vitviz.analysis.cka import cka_matrix, layer_grams
        from vitviz.analysis.distance import mean_attention_distance
        from vitviz.analysis.receptive_field import effective_receptive_field
        from vitviz.capture import capture
        from vitviz.shapes.model import ASSETS_DIR

        image = _as_image(ASSETS_DIR / 'samples' / 'shapes_star.png' if image is None else image)
        x_vit, x_cnn = _inputs(self.vit, [image]), _inputs(self.cnn, [image])
        vit_erf = effective_receptive_field(self.vit, x_vit, centres=self.vit_theory.centres,
                                            pooled_with=self.vit_mass)
        cnn_erf = effective_receptive_field(self.cnn, x_cnn, centres=self.cnn_theory.centres,
                                            pooled_with=self.cnn_mass)
        with torch.no_grad():
            cap = capture(self.vit, x_vit)
        heads = (self.distance_sum + mean_attention_distance(cap)) / vit_erf.images  # (L, H)
        cka = cka_matrix(layer_grams(self.vit, x_vit, bank=self.vit_bank),
                         layer_grams(self.cnn, x_cnn, bank=self.cnn_bank))
        return CnnComparison(
            vit_erf=vit_erf, cnn_erf=cnn_erf, vit_theory=self.vit_theory, cnn_theory=self.cnn_theory,
            attention_distance=heads.mean(axis=1), attention_distance_heads=heads, cka=cka,
            cka_images=1 + self.vit_bank.images, cka_sources={'image': 1, **self.cka_sources},
            vit_cost=self.vit_cost, cnn_cost=self.cnn_cost, patch_costs=self.patch_costs)


def pair_reference(vit: Any = None, cnn: Any = None, *, erf_images: int = 8, cka_shapes: int = 32,
                   cka_samples: bool = True, patch_sizes: Sequence[int] | None = None, seed: int = 0,
                   timing_repeats: int = 5) -> PairReference:
    """Measure what a comparison of ``vit`` and ``cnn`` needs whatever the image (arguments as :func:`compare_cnn`).

    Returns:
        The frozen :class:`PairReference`; its ``compare(image)`` gives :func:`compare_cnn`'s numbers.
    """
    # torch (and timm through the models): loaded when a comparison runs, not on `import vitviz`
    import torch

    from vitviz.analysis.cka import gram_bank
    from vitviz.analysis.cost import measure_cost, patch_costs
    from vitviz.analysis.distance import mean_attention_distance
    from vitviz.analysis.receptive_field import gradient_mass, theoretical_receptive_field
    from vitviz.capture import capture

    if vit is None:
        from vitviz.shapes.model import load_shapes_model  # safetensors: only for the bundled weights

        vit = load_shapes_model()[0]
    if cnn is None:
        from vitviz.shapes.cnn import load_shapes_cnn  # timm and safetensors: only for the bundled weights

        cnn = load_shapes_cnn()[0]
    vit, cnn = vit.eval(), cnn.eval()
    if erf_images < 1:
        raise ValueError('erf_images must be at least 1')
    vit_size, cnn_size = _input_size(vit), _input_size(cnn)
    vit_theory = theoretical_receptive_field(vit, vit_size)
    cnn_theory = theoretical_receptive_field(cnn, cnn_size)

    erf_set, _ = comparison_images(None, samples=False, shapes=erf_images - 1, seed=seed)
    vit_mass = cnn_mass = None
    distance_sum = 0.0
    if erf_set:
        x_vit = _inputs(vit, erf_set)
        vit_mass, cnn_mass = gradient_mass(vit, x_vit), gradient_mass(cnn, _inputs(cnn, erf_set))
        with torch.no_grad():
            cap = capture(vit, x_vit)
        distance_sum = np.sum([mean_attention_distance(cap, item=i) for i in range(len(x_vit))], axis=0)  # (L, H)

    cka_set, sources = comparison_images(None, samples=cka_samples, shapes=cka_shapes, seed=seed)
    if not cka_set:
        raise ValueError('the CKA needs at least one sample picture or generated shape beside the image')
    sizes = tuple(patch_sizes) if patch_sizes is not None else _default_patch_sizes(vit_size)
    return PairReference(
        vit=vit, cnn=cnn, seed=seed, vit_theory=vit_theory, cnn_theory=cnn_theory,
        vit_cost=measure_cost(vit, vit_size, repeats=timing_repeats),
        cnn_cost=measure_cost(cnn, cnn_size, repeats=timing_repeats),
        patch_costs=tuple(patch_costs(vit, sizes, input_size=vit_size, repeats=timing_repeats)),
        vit_mass=vit_mass, cnn_mass=cnn_mass, distance_sum=np.asarray(distance_sum, dtype=np.float64),
        vit_bank=gram_bank(vit, _inputs(vit, cka_set)), cnn_bank=gram_bank(cnn, _inputs(cnn, cka_set)),
        cka_sources=sources)


def compare_cnn(vit: Any = None, cnn: Any = None, image: Any = None, *, erf_images: int = 8, cka_shapes: int = 32,
                cka_samples: bool = True, patch_sizes: Sequence[int] | None = None, seed: int = 0,
                timing_repeats: int = 5) -> CnnComparison:
    """Measure a ViT and a CNN the same way on ``image``.

    Args:
        vit: a timm ViT (default: the bundled vitviz-shapes).
        cnn: a timm CNN with ``feature_info`` (default: the bundled vitviz-shapes-cnn).
        image: a path, bytes, file object, PIL image or uint8 array (default: the bundled star).
        erf_images: images the receptive fields and attention distances average over: ``image`` and
            ``erf_images - 1`` generated shapes (Luo et al. average over several inputs).
        cka_shapes: generated shapes images in the CKA batch (with ``image`` and the samples).
        cka_samples: include the bundled sample pictures in the CKA batch.
        patch_sizes: the ViT's patch sizes to cost (default: those of 8, 12, 14, 16, 24, 32 dividing its input).
        seed: seed of the generated shapes.
        timing_repeats: timed forward passes per cost (median reported).

    Returns:
        The frozen :class:`CnnComparison`. For several images of one pair, :func:`pair_reference` once and its
        ``compare(image)`` for each gives the same numbers without measuring the fixed images again.
    """
    return pair_reference(vit, cnn, erf_images=erf_images, cka_shapes=cka_shapes, cka_samples=cka_samples,
                          patch_sizes=patch_sizes, seed=seed, timing_repeats=timing_repeats).compare(image)


def read_data_curves(path: Path | str | None = None) -> dict | None:
    """The results of ``scripts/data_curves.py`` (``summary``: arch -> size -> image set -> mean, sd, n; ``runs``;
    ``reference``: Dosovitskiy et al. 2021's numbers), or None when the file is not there.

    Raises:
        ValueError: The file is there but is not such a results file.
    """
    path = DATA_CURVES_PATH if path is None else Path(path)
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding='utf-8'))
        for sizes in results['summary'].values():
            for sets in sizes.values():
                for point in sets.values():
                    float(point['mean']), float(point['sd']), int(point['n'])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f'{path.name} is not a data-curves results file ({type(exc).__name__})') from exc
    return results
