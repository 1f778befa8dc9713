"""Shared pieces of the figure builders: image encoding, map placement, overlays, tiled heatmaps.

Every builder works in one of two coordinate frames:

* **original pixels** for anything drawn over the photo: x grows right, y grows down, the photo spans
  ``[0, width] x [0, height]`` and a ``(gh, gw)`` map covers the region the model input shows
  (``InputGeometry.crop_box``), which may reach past the photo when the input was padded;
* **categories** for tiled heatmaps (one cell per category), where the axis labels carry the hover text
  so no per-cell ``customdata`` has to be shipped to the browser.

Figures are kept light: the photo travels once as a downscaled JPEG data URI, arrays travel as float32 or
small integer typed arrays (Plotly serialises numpy arrays as base64). The photo's data URI is encoded once
per image and kept (a PIL image by identity, an array by content), so a figure rebuilt for another layer
or setting does not scale and encode the photo again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from vitviz.i18n import _

__all__ = [
    "MAP_SCALE",
    "MapExtent",
    "as_rgb_array",
    "image_data_uri",
    "image_size",
    "grid_spec",
    "map_extent",
    "split_tokens",
    "prefix_summary",
    "photo_data_uri",
    "photo_trace",
    "grid_lines_trace",
    "cell_hover",
    "map_heatmap",
    "cell_outline",
    "style_image_axes",
    "overlay_figure",
    "tile_array",
    "tile_labels",
    "tiled_heatmap_figure",
    "grid_heatmap_figure",
    "mosaic",
    "mosaic_figure",
    "mosaic_traces",
    "style_mosaic_axes",
    "auto_stride",
]

MAP_SCALE = "Inferno"  # attention and rollout maps; browser components draw with the same stops

MAX_PHOTO_SIDE = 512
JPEG_QUALITY = 70  # under a 60 % opaque map; 80 made the photo ~1.4x the bytes for no visible gain
PHOTO_CACHE_SIZE = 16
VALUE_FORMAT = ".3g"
MARGIN = dict(l=10, r=10, t=60, b=10)


@dataclass(frozen=True)
class MapExtent:
    """Where a ``(gh, gw)`` patch map lies over the original image, in original pixels.

    Attributes:
        top: y of the grid's top edge.
        left: x of the grid's left edge.
        cell_height: height of one patch cell.
        cell_width: width of one patch cell.
        grid_size: patch rows, patch columns.
    """

    top: float
    left: float
    cell_height: float
    cell_width: float
    grid_size: tuple[int, int]

    @property
    def bottom(self) -> float:
        return self.top + self.cell_height * self.grid_size[0]

    @property
    def right(self) -> float:
        return self.left + self.cell_width * self.grid_size[1]

    def cell_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        """Corners ``(x0, y0, x1, y1)`` of one patch cell."""
        x0 = self.left + col * self.cell_width
        y0 = self.top + row * self.cell_height
        return x0, y0, x0 + self.cell_width, y0 + self.cell_height


# --------------------------------------------------------------------------------------------- images


def as_rgb_array(image: Any) -> np.ndarray:
    """The image as a ``(H, W, 3)`` uint8 array (PIL image, or a uint8/float array in HWC or HW)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr * 255.0 if arr.max(initial=0) <= 1.0 else arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)  # (H, W, 3)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
    return np.ascontiguousarray(arr[..., :3])


def image_data_uri(image: Any, *, max_side: int | None = MAX_PHOTO_SIDE, fmt: str = "JPEG") -> str:
    """Encode an image as a data URI, downscaled so its longest side is at most ``max_side``.

    Args:
        image: PIL image or uint8 array.
        max_side: longest side after downscaling; ``None`` keeps the size.
        fmt: ``"JPEG"`` for photos, ``"PNG"`` for small exact tiles (filters, patch sequences).
    """
    pil = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(as_rgb_array(image))
    if max_side is not None and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt.upper() == "JPEG":
        pil.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        mime = "image/jpeg"
    else:
        pil.save(buf, format="PNG", optimize=True)
        mime = "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def image_size(image: Any) -> tuple[int, int]:
    """``(height, width)`` of a PIL image or an image array, without converting it."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    return tuple(int(v) for v in np.shape(image)[:2])


_PHOTO_URIS: OrderedDict[tuple, tuple[Any, str]] = OrderedDict()  # key → (weak ref or None, data URI)
_PHOTO_LOCK = threading.Lock()


def _photo_key(image: Any, max_side: int | None) -> tuple[tuple, Any]:
    """A cache key for the photo's data URI and, for a PIL image, a weak reference that proves it is alive.

    A PIL image is keyed by identity (the app keeps one decoded image per upload); an array by a digest of
    its bytes, since arrays are often rebuilt or changed in place.
    """
    if isinstance(image, Image.Image):
        return ("pil", id(image), image.size, image.mode, max_side), weakref.ref(image)
    arr = np.ascontiguousarray(image)
    digest = hashlib.blake2b(arr.view(np.uint8).reshape(-1), digest_size=16).hexdigest()
    return ("array", arr.shape, str(arr.dtype), digest, max_side), None


def photo_data_uri(image: Any, *, max_side: int | None = MAX_PHOTO_SIDE) -> str:
    """:func:`image_data_uri` of a photo (JPEG), encoded once per image and reused (a small LRU cache)."""
    key, ref = _photo_key(image, max_side)
    with _PHOTO_LOCK:
        hit = _PHOTO_URIS.get(key)
        if hit is not None and (hit[0] is None or hit[0]() is image):
            _PHOTO_URIS.move_to_end(key)
            return hit[1]
    uri = image_data_uri(image, max_side=max_side)
    with _PHOTO_LOCK:
        _PHOTO_URIS[key] = (ref, uri)
        while len(_PHOTO_URIS) > PHOTO_CACHE_SIZE:
            _PHOTO_URIS.popitem(last=False)
    return uri


# ------------------------------------------------------------------------------------- token geometry


def grid_spec(layout_or_grid: Any) -> tuple[tuple[int, int], tuple[int, int] | None, tuple[str, ...]]:
    """``(grid_size, patch_size or None, prefix_names)`` from a TokenLayout, a patch grid or a tuple.

    Anything with ``grid_size`` works (``TokenLayout``, ``PatchGrid``); ``patch_size`` and
    ``prefix_names`` are used when present. A plain ``(rows, cols)`` tuple is a grid without prefix tokens.
    """
    if hasattr(layout_or_grid, "grid_size"):
        grid = tuple(int(v) for v in layout_or_grid.grid_size)
        patch = getattr(layout_or_grid, "patch_size", None)
        patch = None if patch is None else tuple(int(v) for v in np.broadcast_to(patch, (2,)))
        prefix = tuple(getattr(layout_or_grid, "prefix_names", ()))
        return (grid[0], grid[1]), patch, prefix
    rows, cols = (int(v) for v in layout_or_grid)
    return (rows, cols), None, ()


def map_extent(geometry: Any, image_size: tuple[int, int], layout_or_grid: Any) -> MapExtent:
    """Place a patch grid over the original image.

    The grid starts at the model input's top-left corner. With a known patch size a cell spans
    ``patch_size`` input pixels, so a grid that covers more or less than the input (padding or dropped
    remainder) is still placed exactly; otherwise the grid is spread evenly over the crop box.

    Args:
        geometry: ``InputGeometry`` (``crop_box``, ``input_size``); ``None`` means the whole image was
            resized to the input without cropping (the layout's ``input_size``, or a ``PatchGrid``'s
            ``image_size``, is then the input).
        image_size: original image (height, width), used when ``geometry`` is ``None``.
        layout_or_grid: see :func:`grid_spec`.
    """
    grid, patch, _prefix = grid_spec(layout_or_grid)
    if geometry is None:
        top, left, box_h, box_w = 0.0, 0.0, float(image_size[0]), float(image_size[1])
        # TokenLayout.input_size, or PatchGrid.image_size (a grid cut from the image's own pixels)
        input_size = getattr(layout_or_grid, "input_size", None) or getattr(layout_or_grid, "image_size", None)
    else:
        top, left, box_h, box_w = (float(v) for v in geometry.crop_box)
        input_size = getattr(geometry, "input_size", None)
    if patch is not None and input_size is not None:
        cell_h = patch[0] * box_h / input_size[0]
        cell_w = patch[1] * box_w / input_size[1]
    else:
        cell_h, cell_w = box_h / grid[0], box_w / grid[1]
    return MapExtent(top, left, cell_h, cell_w, grid)


def split_tokens(values: np.ndarray, layout: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split a per-token vector ``(N,)`` into prefix values ``(P,)`` and a patch map ``(gh, gw)``."""
    (gh, gw), _patch_size, prefix = grid_spec(layout)
    values = np.asarray(values, dtype=np.float64).reshape(-1)  # (N,)
    num_prefix = len(prefix)
    if values.size != num_prefix + gh * gw:
        raise ValueError(f"expected {num_prefix} prefix + {gh * gw} patch values, got {values.size}")
    return values[:num_prefix], values[num_prefix:].reshape(gh, gw)  # (P,), (gh, gw)


def prefix_summary(names: Sequence[str], values: Sequence[float], fmt: str = VALUE_FORMAT) -> str:
    """``"cls: 0.31 · reg0: 0.12"`` for the prefix tokens, or ``""`` when there are none."""
    return " · ".join(f"{name}: {value:{fmt}}" for name, value in zip(names, values))


# ------------------------------------------------------------------------------------------- traces


def photo_trace(image: Any, *, max_side: int | None = MAX_PHOTO_SIDE) -> go.Image:
    """The photo as an ``Image`` trace spanning ``[0, W] x [0, H]`` original pixels, JPEG-compressed.

    The encoded photo is cached per image (:func:`photo_data_uri`): pass the same PIL image (or equal
    arrays) to every figure of a page and it is scaled and encoded once.
    """
    if not isinstance(image, Image.Image):
        image = as_rgb_array(image)
    source = photo_data_uri(image, max_side=max_side)
    height, width = image_size(image)
    scale = 1.0 if max_side is None else min(1.0, max_side / max(height, width))
    small_h, small_w = max(1, round(height * scale)), max(1, round(width * scale))
    dy, dx = height / small_h, width / small_w
    return go.Image(
        source=source,
        x0=dx / 2, y0=dy / 2, dx=dx, dy=dy,
        hoverinfo="skip", name=_("image"),
    )


def grid_lines_trace(extent: MapExtent, *, color: str = "rgba(255,255,255,0.45)") -> go.Scatter:
    """All patch grid lines as one ``Scatter`` trace (segments separated by ``None``)."""
    gh, gw = extent.grid_size
    xs: list[float | None] = []
    ys: list[float | None] = []
    for r in range(gh + 1):
        y = extent.top + r * extent.cell_height
        xs += [extent.left, extent.right, None]
        ys += [y, y, None]
    for c in range(gw + 1):
        x = extent.left + c * extent.cell_width
        xs += [x, x, None]
        ys += [extent.top, extent.bottom, None]
    return go.Scatter(
        x=xs, y=ys, mode="lines", line=dict(color=color, width=1),
        hoverinfo="skip", showlegend=False, name=_("patch grid"),
    )


def cell_hover(row: str, col: str, value: str) -> str:
    """Hover text ``"row r, col c: value"`` in the current language; arguments are Plotly template fields."""
    return _("row {row}, col {col}: {value}").format(row=row, col=col, value=value)


def _row_col_customdata(grid: tuple[int, int]) -> np.ndarray:
    rows, cols = np.indices(grid, dtype=np.int16)  # (gh, gw) each
    return np.stack([rows, cols], axis=-1)  # (gh, gw, 2)


def map_heatmap(
    values: np.ndarray,
    extent: MapExtent,
    *,
    colorscale: Any = MAP_SCALE,
    zmin: float | None = None,
    zmax: float | None = None,
    opacity: float = 0.6,
    colorbar_title: str | None = None,
    value_label: str | None = None,
    value_format: str = VALUE_FORMAT,
    showscale: bool = True,
) -> go.Heatmap:
    """A ``(gh, gw)`` map as a heatmap in original-pixel coordinates; hover ``row r, col c: value``.

    ``value_label`` defaults to "value" in the current language.
    """
    value_label = _("value") if value_label is None else value_label
    values = np.asarray(values, dtype=np.float32)
    if values.shape != extent.grid_size:
        raise ValueError(f"map shape {values.shape} does not match grid {extent.grid_size}")
    return go.Heatmap(
        z=values,
        x0=extent.left + extent.cell_width / 2, dx=extent.cell_width,
        y0=extent.top + extent.cell_height / 2, dy=extent.cell_height,
        customdata=_row_col_customdata(extent.grid_size),
        hovertemplate=cell_hover("%{customdata[0]}", "%{customdata[1]}", f"%{{z:{value_format}}}")
        + f"<extra>{value_label}</extra>",
        colorscale=colorscale, zmin=zmin, zmax=zmax, opacity=opacity, hoverongaps=False,
        showscale=showscale, colorbar=dict(title=dict(text=colorbar_title or value_label), thickness=14),
        name=value_label,
    )


def cell_outline(extent: MapExtent, row: int, col: int, *, color: str = "#00e5ff") -> dict:
    """A layout shape outlining one patch cell (e.g. the query patch)."""
    x0, y0, x1, y1 = extent.cell_box(row, col)
    return dict(type="rect", xref="x", yref="y", x0=x0, y0=y0, x1=x1, y1=y1,
                line=dict(color=color, width=2), fillcolor="rgba(0,0,0,0)")


def style_image_axes(
    fig: go.Figure, image_size: tuple[int, int], extent: MapExtent | None = None, *, row=None, col=None
) -> None:
    """Equal-aspect axes in original pixels, y pointing down, covering the image and the map."""
    height, width = image_size
    x_lo, x_hi, y_lo, y_hi = 0.0, float(width), 0.0, float(height)
    if extent is not None:
        x_lo, x_hi = min(x_lo, extent.left), max(x_hi, extent.right)
        y_lo, y_hi = min(y_lo, extent.top), max(y_hi, extent.bottom)
    fig.update_xaxes(range=[x_lo, x_hi], showgrid=False, zeroline=False, constrain="domain",
                     title_text=_("x (px)"), row=row, col=col)
    fig.update_yaxes(range=[y_hi, y_lo], showgrid=False, zeroline=False, constrain="domain",
                     title_text=_("y (px)"), row=row, col=col)
    _equal_aspect(fig, row=row, col=col)


def _equal_aspect(fig: go.Figure, *, row=None, col=None) -> None:
    if row is None:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
        return
    xaxis = fig.get_subplot(row, col).xaxis.plotly_name  # 'xaxis2'
    fig.update_yaxes(scaleanchor=xaxis.replace("axis", ""), scaleratio=1, row=row, col=col)


def overlay_figure(
    values: np.ndarray,
    image: Any,
    geometry: Any = None,
    layout: Any = None,
    *,
    title: str | None = None,
    colorscale: Any = MAP_SCALE,
    zmin: float | None = None,
    zmax: float | None = None,
    opacity: float = 0.6,
    value_label: str | None = None,
    value_format: str = VALUE_FORMAT,
    grid_lines: bool = True,
) -> go.Figure:
    """Draw a ``(gh, gw)`` map over the original image, on the region the model input shows.

    Args:
        values: the patch map, ``(gh, gw)``.
        image: the original (upright) image, PIL or uint8 array.
        geometry: ``InputGeometry`` mapping the model input to the original image; ``None`` when the
            whole image was resized to the input.
        layout: ``TokenLayout`` (or patch grid / ``(gh, gw)`` tuple); defaults to the map's shape.
        title: figure title.
        colorscale, zmin, zmax, opacity: heatmap colouring.
        value_label: what the values are (colour bar title, hover); default "value" in the current language.
        value_format: d3 format of the value in the hover text.
        grid_lines: draw the patch grid.

    Returns:
        Traces ``[image, heatmap]`` plus ``[grid lines]`` when ``grid_lines``.
    """
    values = np.asarray(values)
    size = image_size(image)
    extent = map_extent(geometry, size, values.shape if layout is None else layout)
    fig = go.Figure([photo_trace(image)])
    fig.add_trace(map_heatmap(values, extent, colorscale=colorscale, zmin=zmin, zmax=zmax, opacity=opacity,
                              value_label=value_label, value_format=value_format))
    if grid_lines:
        fig.add_trace(grid_lines_trace(extent))
    style_image_axes(fig, size, extent)
    fig.update_layout(title=dict(text=title), margin=MARGIN)
    return fig


def grid_heatmap_figure(
    values: np.ndarray,
    *,
    title: str | None = None,
    value_label: str | None = None,
    value_format: str = VALUE_FORMAT,
    colorscale: Any = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    outline: tuple[int, int] | None = None,
) -> go.Figure:
    """A ``(gh, gw)`` map on its own, axes in patch rows/columns; hover ``row r, col c: value``.

    Args:
        values: the map, ``(gh, gw)``.
        outline: ``(row, col)`` of a cell to outline (e.g. the query position).
        value_label: what the values are (colour bar title, hover); default "value" in the current language.
    """
    value_label = _("value") if value_label is None else value_label
    values = np.asarray(values, dtype=np.float32)
    gh, gw = values.shape
    fig = go.Figure(go.Heatmap(
        z=values, x0=0, dx=1, y0=0, dy=1,
        hovertemplate=cell_hover("%{y}", "%{x}", f"%{{z:{value_format}}}") + f"<extra>{value_label}</extra>",
        colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, hoverongaps=False,
        colorbar=dict(title=dict(text=value_label), thickness=14), name=value_label,
    ))
    fig.update_xaxes(range=[-0.5, gw - 0.5], title_text=_("patch column"), showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_yaxes(range=[gh - 0.5, -0.5], title_text=_("patch row"), showgrid=False, zeroline=False,
                     constrain="domain")
    _equal_aspect(fig)
    if outline is not None:
        r, c = outline
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5,
                      line=dict(color="#00e5ff", width=2))
    fig.update_layout(title=dict(text=title), margin=MARGIN)
    return fig


def mosaic(tiles: np.ndarray, columns: int, *, gap: int = 1, fill: int = 255) -> np.ndarray:
    """Place ``(n, h, w, 3)`` uint8 tiles row by row, ``columns`` per row, ``gap`` pixels apart.

    Returns:
        ``(rows*(h+gap)-gap, columns*(w+gap)-gap, 3)`` uint8; slot ``i`` starts at
        ``((i // columns)*(h+gap), (i % columns)*(w+gap))``.
    """
    tiles = np.asarray(tiles, dtype=np.uint8)
    n, h, w = tiles.shape[:3]
    rows = max(1, math.ceil(n / columns))
    out = np.full((rows * (h + gap), columns * (w + gap), 3), fill, dtype=np.uint8)
    for i in range(n):
        y, x = (i // columns) * (h + gap), (i % columns) * (w + gap)
        out[y:y + h, x:x + w] = tiles[i]
    return out[: rows * (h + gap) - gap, : columns * (w + gap) - gap]


def mosaic_traces(
    tiles: np.ndarray, columns: int, hover: Sequence[str], *, fmt: str = "PNG", gap: int = 1
) -> tuple[go.Image, go.Heatmap, tuple[int, int]]:
    """The tiles of :func:`mosaic` as one compressed image, plus an invisible one-cell-per-slot heatmap
    that carries the hover text ``hover[i]`` of slot ``i``; both in mosaic pixels.

    Returns:
        ``(image trace, hover heatmap trace, (mosaic height, mosaic width))``.
    """
    tiles = np.asarray(tiles, dtype=np.uint8)
    n, h, w = tiles.shape[:3]
    rows = max(1, math.ceil(n / columns))
    picture = mosaic(tiles, columns, gap=gap)
    text = np.full(rows * columns, "", dtype=object)
    text[:n] = list(hover)
    present = np.full(rows * columns, np.nan, dtype=np.float32)
    present[:n] = 0
    image = go.Image(source=image_data_uri(picture, max_side=None, fmt=fmt), x0=0.5, y0=0.5,
                     hoverinfo="skip", name=_("tiles"))
    heatmap = go.Heatmap(
        z=present.reshape(rows, columns),  # (rows, columns)
        x0=w / 2, dx=w + gap, y0=h / 2, dy=h + gap, text=text.reshape(rows, columns).tolist(),
        hovertemplate="%{text}<extra></extra>", hoverongaps=False, showscale=False,
        colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]], name=_("hover"),
    )
    return image, heatmap, picture.shape[:2]


def style_mosaic_axes(fig: go.Figure, size: tuple[int, int], *, row=None, col=None) -> None:
    """Hidden equal-aspect axes spanning a mosaic of ``size`` (height, width) pixels, y down."""
    fig.update_xaxes(range=[0, size[1]], visible=False, constrain="domain", row=row, col=col)
    fig.update_yaxes(range=[size[0], 0], visible=False, constrain="domain", row=row, col=col)
    _equal_aspect(fig, row=row, col=col)


def mosaic_figure(
    tiles: np.ndarray, columns: int, hover: Sequence[str], *, fmt: str = "PNG", gap: int = 1
) -> go.Figure:
    """A figure of :func:`mosaic_traces`: traces ``[image, hover heatmap]``."""
    image, heatmap, size = mosaic_traces(tiles, columns, hover, fmt=fmt, gap=gap)
    fig = go.Figure([image, heatmap])
    style_mosaic_axes(fig, size)
    fig.update_layout(margin=MARGIN, plot_bgcolor="white")
    return fig


# ------------------------------------------------------------------------------------ tiled heatmaps


def tile_array(tiles: np.ndarray) -> np.ndarray:
    """Lay out ``(A, B, h, w)`` tiles as one ``(A*(h+1)-1, B*(w+1)-1)`` float32 array, NaN between tiles.

    One heatmap with NaN gaps is far lighter (in JSON and in the browser) than ``A*B`` subplots.
    """
    tiles = np.asarray(tiles, dtype=np.float32)
    a, b, h, w = tiles.shape
    padded = np.full((a, b, h + 1, w + 1), np.nan, dtype=np.float32)  # (A, B, h+1, w+1)
    padded[:, :, :h, :w] = tiles
    big = padded.transpose(0, 2, 1, 3).reshape(a * (h + 1), b * (w + 1))  # (A*(h+1), B*(w+1))
    return big[:-1, :-1]


def tile_labels(
    outer: Sequence[int], tile_len: int, cell_fmt: str, tick_fmt: str
) -> tuple[list[str], list[str], list[str]]:
    """Category labels along one axis of :func:`tile_array`, plus tick positions and tick text.

    Cell ``k`` of the tile for index ``t`` (taken from ``outer``) is labelled ``cell_fmt.format(t=t, k=k)``;
    the gap after each tile gets a unique label of zero-width spaces, never hovered since its cells are NaN.
    Ticks sit on each tile's middle cell and read ``tick_fmt.format(t=t)``.

    Returns:
        ``(labels, tickvals, ticktext)``.
    """
    labels: list[str] = []
    for i, t in enumerate(outer):
        labels += [cell_fmt.format(t=t, k=k) for k in range(tile_len)]
        if i < len(outer) - 1:
            labels.append("\u200b" * (i + 1))
    tickvals = [cell_fmt.format(t=t, k=tile_len // 2) for t in outer]
    ticktext = [tick_fmt.format(t=t) for t in outer]
    return labels, tickvals, ticktext


def tiled_heatmap_figure(
    tiles: np.ndarray,
    rows: tuple[Sequence[int], str, str],
    cols: tuple[Sequence[int], str, str],
    *,
    hover_header: str = "",
    value_label: str | None = None,
    value_format: str = VALUE_FORMAT,
    colorscale: Any = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    title: str | None = None,
    x_title: str = "",
    y_title: str = "",
) -> go.Figure:
    """One heatmap of ``(A, B, h, w)`` tiles with NaN gaps; hover text comes from the axis categories.

    Args:
        tiles: the tiles, ``(A, B, h, w)``.
        rows: ``(outer indices (A,), cell format, tick format)`` for the y axis, see :func:`tile_labels`.
        cols: the same for the x axis (``B`` indices).
        hover_header: first hover line.
        value_label, value_format: hover line ``"{value_label} {z}"`` and colour bar title (default "value"
            in the current language).
    """
    value_label = _("value") if value_label is None else value_label
    tiles = np.asarray(tiles)
    a, b, h, w = tiles.shape
    y_labels, y_ticks, y_text = tile_labels(rows[0], h, rows[1], rows[2])
    x_labels, x_ticks, x_text = tile_labels(cols[0], w, cols[1], cols[2])
    header = f"{hover_header}<br>" if hover_header else ""
    fig = go.Figure(go.Heatmap(
        z=tile_array(tiles), x=x_labels, y=y_labels,
        hovertemplate=f"{header}%{{y}}<br>%{{x}}<br>{value_label} %{{z:{value_format}}}<extra></extra>",
        colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, hoverongaps=False,
        colorbar=dict(title=dict(text=value_label), thickness=14), name=value_label,
    ))
    fig.update_xaxes(type="category", tickmode="array", tickvals=x_ticks, ticktext=x_text,
                     showgrid=False, zeroline=False, title_text=x_title, constrain="domain")
    fig.update_yaxes(type="category", tickmode="array", tickvals=y_ticks, ticktext=y_text,
                     showgrid=False, zeroline=False, title_text=y_title, autorange="reversed",
                     constrain="domain")
    _equal_aspect(fig)
    fig.update_layout(title=dict(text=title), margin=MARGIN, plot_bgcolor="white")
    return fig


def auto_stride(size: int, max_tiles: int) -> int:
    """Smallest stride that keeps ``ceil(size / stride)`` at most ``max_tiles``."""
    return max(1, math.ceil(size / max_tiles))
