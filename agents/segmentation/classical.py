"""The classical baseline: thresholds, gradients and a watershed, behind the `Segmenter` interface.

No learning, a few physical thresholds; what a microscopist would script before reaching for a network.

1. Pores are vacuum, dark in HAADF: Otsu's threshold on the smoothed HAADF when its dark class is at
   most `PORE_DARK_RATIO` of the bright one (a pore mode exists), else half the solid level; small specks
   removed, small holes filled.
2. Grains of one phase differ in BF (diffraction contrast), phases in HAADF (Z contrast), and boundaries
   carry a thin bright oxide film (HAADF) and a strain dip (BF). The edge map is the Sobel gradient of
   both smoothed channels, each divided by its noise level. A marker-controlled watershed of it
   (markers: the flat basins, local minima of the smoothed edge map at least `MARKER_SPACING_PX` apart)
   over-segments the solid into basins separated by one-pixel watershed lines.
3. Neighbouring basins are merged (a few union-find rounds) unless their mean BF or HAADF differ by more
   than `MERGE_CONTRAST` (normalised units) or the line between them is a ridge — its mean dark-BF /
   bright-HAADF line response exceeds `MERGE_RIDGE`. The lines that survive are the grain boundaries.
4. Each grain's class comes from its mean HAADF relative to the solid's area-weighted median: above
   `CONTAMINATION_REL` contamination (WC wear debris), off by more than `SECONDARY_REL` secondary phase
   (FeAs/Fe2As/BaO are brighter, KFe2As2 darker), else matrix.

A 1-channel image (a plain micrograph) has no BF: the HAADF (or grey) channel is used for both.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from agents.segmentation.image_input import ImageError
from agents.segmentation.segmenter import STEM_CLASSES

SMOOTH_SIGMA_PX = 1.0
PORE_DARK_RATIO = 0.4
MIN_PORE_AREA_PX = 12
MARKER_SPACING_PX = 4
MERGE_CONTRAST = 0.1
MERGE_EDGE = 13.0
MERGE_RIDGE = 1.5
MERGE_ROUNDS = 4
CONTAMINATION_REL = 1.8
SECONDARY_REL = 0.1

MATRIX, BOUNDARY, PORE, SECONDARY, CONTAMINATION = range(5)


class ClassicalSegmenter:
    """Threshold + Sobel + watershed segmentation of STEM surveys (HAADF, BF) or 1-channel micrographs."""

    name = "classical"
    classes = STEM_CLASSES

    def __init__(self, in_channels: int = 2) -> None:
        if in_channels not in (1, 2):
            raise ValueError("in_channels must be 1 or 2")
        self.in_channels = in_channels

    def predict(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[0] != self.in_channels:
            raise ImageError(f"{self.name} expects {self.in_channels} channel(s), got an image of shape {image.shape}")
        pores = _pores(ndi.gaussian_filter(image[0], SMOOTH_SIGMA_PX))
        # both channels in units of their solid's median: contrasts become relative, dose and gain drop out
        rel = image / np.maximum(np.median(image[:, ~pores], axis=1), 1e-6)[:, None, None] if (~pores).any() else image
        haadf = ndi.gaussian_filter(rel[0], SMOOTH_SIGMA_PX)
        bf = ndi.gaussian_filter(rel[-1], SMOOTH_SIGMA_PX)
        edges = _edge_map(rel, haadf, bf)
        basins = _basins(edges, ~pores)
        grains = _merge(basins, haadf, bf, edges, _ridge_response(rel))
        out = np.zeros(image.shape[1:], dtype=np.uint8)
        out[(grains == 0) & ~pores] = BOUNDARY
        out[pores] = PORE
        _classify_grains(out, grains, haadf)
        return out


def _pores(haadf: np.ndarray) -> np.ndarray:
    """Pore mask of a smoothed HAADF image (counts: vacuum is zero)."""
    from skimage.filters import threshold_otsu

    # clip bright debris (WC is 4× the matrix) so Otsu splits vacuum from solid, not solid from debris
    clipped = np.minimum(haadf, 1.5 * float(np.percentile(haadf, 80)))
    threshold = float(threshold_otsu(clipped))
    dark, bright = clipped[clipped < threshold], clipped[clipped >= threshold]
    has_pores = dark.size > 0 and float(dark.mean()) < PORE_DARK_RATIO * float(bright.mean())
    solid_level = float(np.median(bright)) if has_pores else float(np.median(haadf))
    if not has_pores:
        threshold = 0.5 * solid_level
    pores = ndi.binary_opening(haadf < threshold)
    pores = _remove_small(pores, MIN_PORE_AREA_PX)
    pores |= _remove_small(~pores, MIN_PORE_AREA_PX) ^ ~pores  # fill small holes
    return pores


def _remove_small(mask: np.ndarray, min_area_px: int) -> np.ndarray:
    labels, _ = ndi.label(mask)
    area = np.bincount(labels.ravel())
    keep = area >= min_area_px
    keep[0] = False
    return keep[labels]


def _noise(channel: np.ndarray) -> float:
    """Pixel noise σ from the median absolute horizontal difference (robust to edges)."""
    diff = np.diff(channel, axis=1)
    return float(np.median(np.abs(diff - np.median(diff)))) * 1.4826 / np.sqrt(2.0) + 1e-6


def _edge_map(rel: np.ndarray, haadf: np.ndarray, bf: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitudes of both smoothed channels in units of their noise, summed (once if 1 channel)."""
    edges = np.zeros_like(bf)
    pairs = ((rel[0], haadf), (rel[-1], bf)) if len(rel) == 2 else ((rel[0], haadf),)
    for raw, smooth in pairs:
        magnitude = np.hypot(ndi.sobel(smooth, axis=0), ndi.sobel(smooth, axis=1))
        edges += magnitude / _noise(raw)
    return edges


def _ridge_response(rel: np.ndarray) -> np.ndarray:
    """Thin-line signal of a boundary: dark in BF, bright in HAADF (difference of Gaussians, in noise units)."""
    response = np.zeros(rel.shape[1:], dtype=np.float32)
    signs = (1.0, -1.0) if len(rel) == 2 else (-1.0,)
    for channel, sign in zip(rel, signs, strict=True):
        dog = ndi.gaussian_filter(channel, 0.7) - ndi.gaussian_filter(channel, 2.5)
        response += sign * dog / _noise(channel)
    return response


def _basins(edges: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """Watershed basins of the edge map over the solid; 0 on the one-pixel watershed lines and in pores."""
    from skimage.segmentation import watershed

    smooth = ndi.gaussian_filter(edges, 2.0)
    local_min = (smooth == ndi.minimum_filter(smooth, size=2 * MARKER_SPACING_PX + 1)) & solid
    markers, _ = ndi.label(local_min)
    return watershed(edges, markers, mask=solid, watershed_line=True).astype(np.int32)


def _line_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each line pixel between exactly two regions: (flat index, smaller label, larger label)."""
    big = np.iinfo(np.int32).max
    high = ndi.maximum_filter(labels, size=3)
    low = ndi.minimum_filter(np.where(labels == 0, big, labels), size=3)
    on_line = (labels == 0) & (high > 0) & (low < big) & (low != high)
    idx = np.flatnonzero(on_line)
    return idx, low.ravel()[idx], high.ravel()[idx]


def _merge(basins: np.ndarray, haadf: np.ndarray, bf: np.ndarray, edges: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """Basins merged across weak lines (see the module docstring); merged lines become grain pixels."""
    solid = (basins > 0) | (ndi.maximum_filter(basins, size=3) > 0)
    labels = basins
    for _ in range(MERGE_ROUNDS):
        n = int(labels.max())
        if n < 2:
            break
        idx, a, b = _line_pairs(labels)
        if idx.size == 0:
            break
        count = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
        count[0] = 1.0
        mean_bf = np.bincount(labels.ravel(), bf.ravel(), minlength=n + 1) / count
        mean_haadf = np.bincount(labels.ravel(), haadf.ravel(), minlength=n + 1) / count
        pair = a.astype(np.int64) * (n + 1) + b
        keys, inverse = np.unique(pair, return_inverse=True)
        length = np.bincount(inverse)
        ridge_mean = np.bincount(inverse, ridge.ravel()[idx]) / length
        edge_mean = np.bincount(inverse, edges.ravel()[idx]) / length
        pa, pb = keys // (n + 1), keys % (n + 1)
        contrast = np.maximum(np.abs(mean_bf[pa] - mean_bf[pb]), np.abs(mean_haadf[pa] - mean_haadf[pb]))
        weak = (contrast < MERGE_CONTRAST) & (ridge_mean < MERGE_RIDGE) & (edge_mean < MERGE_EDGE)
        if not weak.any():
            break
        parent = _union_find(n + 1, pa[weak], pb[weak])
        merged = parent[labels]
        # a line pixel whose neighbours are all now one region is no longer a boundary
        merge_line = weak[inverse]
        merged_flat = merged.ravel()
        merged_flat[idx[merge_line]] = parent[a[merge_line]]
        present = np.bincount(merged_flat) > 0
        present[0] = False
        new_id = (np.cumsum(present) * present).astype(np.int32)
        labels = _absorb_dangling_lines(new_id[merged], solid)
    return labels


def _absorb_dangling_lines(labels: np.ndarray, solid: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Line pixels that no longer separate two regions (one label around them) join that region."""
    big = np.iinfo(np.int32).max
    for _ in range(rounds):
        high = ndi.maximum_filter(labels, size=3)
        low = ndi.minimum_filter(np.where(labels == 0, big, labels), size=3)
        lone = (labels == 0) & solid & (high > 0) & (low == high)
        if not lone.any():
            break
        labels = np.where(lone, high, labels)
    return labels


def _union_find(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root label of every label 0..n−1 after joining the pairs (a, b); a root is its set's smallest label."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    root = np.full(component.max() + 1, n, dtype=np.int64)
    np.minimum.at(root, component, np.arange(n))
    return root[component]


def _classify_grains(out: np.ndarray, grains: np.ndarray, haadf: np.ndarray) -> None:
    """Matrix, secondary phase or contamination per grain, by its mean HAADF relative to the solid's."""
    n = int(grains.max())
    if n == 0:
        return
    inside = (grains > 0) & (out != PORE)
    area = np.bincount(grains[inside], minlength=n + 1).astype(float)
    mean = np.bincount(grains[inside], haadf[inside], minlength=n + 1) / np.maximum(area, 1.0)
    valid = area[1:] > 0
    order = np.argsort(mean[1:][valid])
    cumulative = np.cumsum(area[1:][valid][order])
    reference = float(mean[1:][valid][order][np.searchsorted(cumulative, 0.5 * cumulative[-1])]) if valid.any() else 0
    reference = reference if reference > 0 else 1.0
    rel = mean / reference
    grain_class = np.full(n + 1, MATRIX, dtype=np.uint8)
    grain_class[np.abs(rel - 1.0) > SECONDARY_REL] = SECONDARY
    grain_class[rel > CONTAMINATION_REL] = CONTAMINATION
    out[inside] = grain_class[grains[inside]]
