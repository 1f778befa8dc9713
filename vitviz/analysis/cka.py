"""Do two networks see alike? Linear centred kernel alignment (CKA) between their layers.

Kornblith, Norouzi, Lee and Hinton 2019, "Similarity of Neural Network Representations Revisited": for
``n`` examples with representations ``X (n, p1)`` and ``Y (n, p2)``, with the Gram matrices ``K = X X^T``,
``L = Y Y^T`` and the centring matrix ``H = I - 1 1^T / n``,

    HSIC(K, L) = tr(K H L H) / (n - 1)^2,    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),

which for linear kernels equals ``||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)`` on centred features
(their Eq. 5). It is 1 for a layer with itself, and unchanged by any orthogonal transform or isotropic
scaling of either representation (not by arbitrary invertible linear maps). Raghu et al. 2021 ("Do Vision
Transformers See Like CNNs?", Fig. 1) compare every ViT layer with every ResNet layer this way.

A representation is a layer's whole output per image, flattened: every token of a ViT (prefix tokens
included), every position and channel of a CNN feature map. We compute it from ``n x n`` Gram matrices, so the
number of features does not matter, in float64.

A fixed set of images (the same reference pictures for every user's image) is computed once: a
:class:`GramBank` keeps its Gram matrices and, when they fit ``max_bytes``, its features, so adding new images
costs only their forward pass and their products with the fixed set (otherwise the fixed set is run again, in
batches, without keeping its features).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .depths import depth_outputs

__all__ = ['GramBank', 'center_gram', 'cka_matrix', 'gram', 'gram_bank', 'layer_grams', 'linear_cka']

MAX_BANK_BYTES = 128 * 2 ** 20
"""Largest fixed-set features a :class:`GramBank` keeps (float32): the bundled shapes pair's fit; a ViT-B's
(13 depths x 197 tokens x 768 x 46 images, 360 MB) are recomputed instead."""


def gram(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(n, n)`` float64 linear Gram matrix ``X X^T`` of ``(n, ...)`` features (flattened per example)."""
    if isinstance(features, np.ndarray):
        features = np.ascontiguousarray(features)  # torch takes no negative strides (e.g. a reversed view)
    x = torch.as_tensor(features).detach().reshape(len(features), -1).double()  # (n, p)
    return (x @ x.T).cpu().numpy()


def center_gram(k: np.ndarray) -> np.ndarray:
    """``H K H``: the Gram matrix of the centred features (rows and columns minus their means)."""
    k = np.asarray(k, dtype=np.float64)
    k = k - k.mean(axis=0, keepdims=True)
    return k - k.mean(axis=1, keepdims=True)


def _cka_centred(kc: np.ndarray, lc: np.ndarray) -> float:
    """CKA of two centred Gram matrices: ``<Kc, Lc> / (||Kc|| ||Lc||)`` (the ``(n - 1)^2`` cancels)."""
    denominator = np.linalg.norm(kc) * np.linalg.norm(lc)
    return float(np.sum(kc * lc) / denominator) if denominator > 0 else float('nan')


def linear_cka(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Linear CKA between two representations of the same ``n`` examples.

    Args:
        x: ``(n, ...)`` features of layer A (flattened per example).
        y: ``(n, ...)`` features of layer B.

    Returns:
        A number in ``[0, 1]`` (NaN when a representation is constant over the examples).
    """
    if len(x) != len(y):
        raise ValueError(f'{len(x)} examples against {len(y)}')
    if len(x) < 2:
        raise ValueError('CKA needs at least 2 examples')
    return _cka_centred(center_gram(gram(x)), center_gram(gram(y)))


def _depth_features(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Every depth's output over the images ``x``, flattened per image: ``[(n, p)]`` float32, no gradients."""
    chunks: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            full = depth_outputs(model, x[i:i + batch_size]).full
            chunks.append([f.reshape(len(f), -1) for f in full])  # (b, p) per depth
    return [torch.cat([c[d] for c in chunks]) for d in range(len(chunks[0]))]  # (n, p) per depth


@dataclass(frozen=True, eq=False)
class GramBank:
    """A fixed image set seen by one model, computed once: what :func:`layer_grams` needs to add new images.

    Attributes:
        grams: per depth the ``(m, m)`` float64 uncentred Gram matrix of the fixed set.
        features: per depth its ``(m, p)`` float32 features, or None when larger than the bank's ``max_bytes``.
        inputs: the ``(m, 3, H, W)`` model inputs, run again in batches when ``features`` is None.
        batch_size: images per forward pass.
    """

    grams: tuple[np.ndarray, ...]
    features: tuple[torch.Tensor, ...] | None
    inputs: torch.Tensor
    batch_size: int

    @property
    def images(self) -> int:
        return len(self.inputs)

    def cross(self, model: torch.nn.Module, new: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """Per depth ``(m, n)`` float64 products of the fixed set's features with ``new``'s ``(n, p)`` features."""
        new = [f.double() for f in new]
        if self.features is not None:
            return [(f.double() @ g.T).cpu().numpy() for f, g in zip(self.features, new)]
        parts = []
        for i in range(0, self.images, self.batch_size):  # (b, p) per depth, dropped after use
            batch = _depth_features(model, self.inputs[i:i + self.batch_size], self.batch_size)
            parts.append([(f.double() @ g.T).cpu().numpy() for f, g in zip(batch, new)])
        return [np.concatenate([p[d] for p in parts]) for d in range(len(new))]


def gram_bank(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 32,
              max_bytes: int = MAX_BANK_BYTES) -> GramBank:
    """The fixed images ``x`` seen by ``model``, for :func:`layer_grams`'s ``bank``: their Gram matrix at every
    depth, and their features when all of them fit ``max_bytes`` (float32)."""
    feats = _depth_features(model, x, batch_size)
    grams = tuple((f.double() @ f.double().T).cpu().numpy() for f in feats)
    kept = sum(f.numel() * 4 for f in feats) <= max_bytes
    return GramBank(grams=grams, features=tuple(feats) if kept else None, inputs=x, batch_size=batch_size)


def layer_grams(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 32, *,
                bank: GramBank | None = None) -> list[np.ndarray]:
    """The centred Gram matrix of every depth of ``model`` over the images ``x`` (then ``bank``'s images).

    Depths as :func:`~vitviz.analysis.depths.depth_outputs` (a ViT's embedding and blocks with all tokens, a
    CNN's feature levels), run in batches without gradients.

    Args:
        model: a timm ViT or CNN, in eval mode.
        x: ``(n, 3, H, W)`` model inputs.
        batch_size: images per forward pass.
        bank: a fixed set computed once by :func:`gram_bank` with the same model: its images follow ``x``'s, as if
            they had been appended to ``x``.

    Returns:
        Per depth an ``(n, n)`` float64 centred Gram matrix (``(n + m, n + m)`` with a bank of ``m`` images).
    """
    feats = [f.double() for f in _depth_features(model, x, batch_size)]  # (n, p) per depth
    own = [(f @ f.T).cpu().numpy() for f in feats]
    if bank is None:
        return [center_gram(k) for k in own]
    if len(bank.grams) != len(own):
        raise ValueError(f'the bank has {len(bank.grams)} depths, the model {len(own)}')
    cross = bank.cross(model, feats)  # (m, n) per depth
    return [center_gram(np.block([[k, c.T], [c, g]])) for k, c, g in zip(own, cross, bank.grams)]


def cka_matrix(grams_a: Sequence[np.ndarray], grams_b: Sequence[np.ndarray]) -> np.ndarray:
    """``(La, Lb)`` linear CKA between every depth of network A and every depth of network B.

    Args:
        grams_a: centred Gram matrices of A's depths over ``n`` images (:func:`layer_grams`).
        grams_b: the same for B, over the same images in the same order.
    """
    if {g.shape for g in grams_a} | {g.shape for g in grams_b} != {grams_a[0].shape}:
        raise ValueError('every Gram matrix must be over the same images')
    return np.array([[_cka_centred(ka, kb) for kb in grams_b] for ka in grams_a])  # (La, Lb)
