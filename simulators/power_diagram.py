"""Raster primitives of the microstructure: a periodic power (Laguerre) diagram and disc painting."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


class PowerDiagram:
    """Periodic Laguerre tessellation: point x belongs to the seed minimising |x − s|² − w.

    Lifting each seed to height sqrt(W − w) (W = max w) turns the power distance into a 3-D Euclidean
    distance, so a k-d tree (over the seeds plus periodic ghost copies near the edges) finds the winner.
    With distances wanted, pixels are evaluated in B×B blocks: every seed that wins a pixel of a block
    lies within 2·(block half-diagonal) of the block centre's nearest lifted seed, so the candidate list
    is exact, and within a block the power distance is linear in the pixel offset.
    """

    def __init__(self, seeds: np.ndarray, weights: np.ndarray, extent: float) -> None:
        self.extent = L = float(extent)
        seeds = wrap(np.asarray(seeds, dtype=float), L)
        weights = np.asarray(weights, dtype=float)
        self.cell_nm = L / np.sqrt(len(seeds))
        # A winner is never farther than sqrt(r² + Δw) from a point whose nearest seed is r away.
        margin = min(L, 4.0 * self.cell_nm + float(np.sqrt(np.ptp(weights))))
        xy, w, owner = [], [], []
        for sx in (-L, 0.0, L):
            for sy in (-L, 0.0, L):
                shifted = seeds + np.array([sx, sy])
                keep = np.all((shifted > -margin) & (shifted < L + margin), axis=1)
                xy.append(shifted[keep])
                w.append(weights[keep])
                owner.append(np.flatnonzero(keep))
        self._xy, self._w, self._owner = np.concatenate(xy), np.concatenate(w), np.concatenate(owner)
        self._tree = cKDTree(np.c_[self._xy, np.sqrt(self._w.max() - self._w)])

    def grid(
        self, origin: tuple[float, float], shape: tuple[int, int], pixel: float, with_distance: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cell index (int32) and, optionally, distance to the cell boundary (float32, nm) per pixel."""
        if not with_distance:
            gx, gy = np.meshgrid(
                wrap((np.arange(shape[1]) + 0.5) * pixel + origin[0], self.extent),
                wrap((np.arange(shape[0]) + 0.5) * pixel + origin[1], self.extent),
            )
            idx = self._tree.query(np.c_[gx.ravel(), gy.ravel(), np.zeros(gx.size)], workers=-1)[1]
            return self._owner[idx].astype(np.int32).reshape(shape), np.full(shape, np.inf, np.float32)
        # Blocks of a fifth of a cell: few candidates each, yet large enough to vectorise well.
        B = int(np.clip(2 ** np.round(np.log2(self.cell_nm / (5.0 * pixel))), 2, 8))
        nby, nbx = -(-shape[0] // B), -(-shape[1] // B)
        bx, by = np.meshgrid(
            (np.arange(nbx) * B + B / 2) * pixel + origin[0], (np.arange(nby) * B + B / 2) * pixel + origin[1]
        )
        centres = wrap(np.c_[bx.ravel(), by.ravel()], self.extent)
        offsets = ((np.arange(B) + 0.5) - B / 2) * pixel
        ux, uy = (a.ravel().astype(np.float32) for a in np.meshgrid(offsets, offsets))
        ids = np.empty((len(centres), B * B), dtype=np.int32)
        dist = np.empty((len(centres), B * B), dtype=np.float32)
        reach = np.sqrt(2.0) * B * pixel + 2.0 * pixel
        todo = np.arange(len(centres))
        k = min(8, len(self._xy))
        while todo.size:
            d, cand = self._tree.query(np.c_[centres[todo], np.zeros(todo.size)], k=k, workers=-1)
            cand, d = cand.reshape(todo.size, k), d.reshape(todo.size, k)
            exact = (d[:, -1] > d[:, 0] + reach) | (k >= len(self._xy))
            for chunk in np.array_split(np.flatnonzero(exact), max(1, int(exact.sum()) // 2048)):
                blocks = todo[chunk]
                ids[blocks], dist[blocks] = self._blocks(centres[blocks], cand[chunk], ux, uy)
            todo = todo[~exact]
            k = min(2 * k, len(self._xy))

        def unblock(a: np.ndarray) -> np.ndarray:
            a = a.reshape(nby, nbx, B, B).transpose(0, 2, 1, 3).reshape(nby * B, nbx * B)
            return np.ascontiguousarray(a[: shape[0], : shape[1]])

        return unblock(ids), unblock(dist)

    def _blocks(
        self, centres: np.ndarray, cand: np.ndarray, ux: np.ndarray, uy: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        rel = (self._xy[cand] - centres[:, None, :]).astype(np.float32)
        norm2 = np.sum(rel**2, axis=-1)
        const = norm2 - self._w[cand].astype(np.float32)
        # |u − s|² − w = |u|² + (|s|² − w − 2 u·s); |u|² is common to all candidates of a pixel.
        power = ux[None, :, None] * rel[:, None, :, 0]
        power += uy[None, :, None] * rel[:, None, :, 1]
        power *= -2.0
        power += const[:, None, :]
        best = np.argmin(power, axis=-1)[..., None]
        ids = self._owner[np.take_along_axis(cand, best[..., 0], axis=1)].astype(np.int32)
        power -= np.take_along_axis(power, best, axis=-1)
        sep2 = norm2[:, :, None] + norm2[:, None, :] - 2.0 * (rel @ rel.transpose(0, 2, 1))
        half_inv_sep = 0.5 / np.sqrt(np.maximum(sep2, 1e-12))
        np.einsum("mkk->mk", half_inv_sep)[...] = np.inf
        # Distance to the power bisector of two cells; the nearest such line bounds a convex cell. The
        # winner's own entry is 0·inf = nan, which fmin skips.
        with np.errstate(invalid="ignore"):
            power *= np.take_along_axis(half_inv_sep, best, axis=1)
        return ids, np.fmin.reduce(power, axis=-1)


def paint_discs(mask: np.ndarray, centres_px: np.ndarray, radii_px: np.ndarray, periodic: bool = False) -> None:
    """Set pixels of `mask` whose centres lie inside discs given in pixel units (x, y), in place.

    Pixel (r, c) has its centre at (c + 0.5, r + 0.5). Discs are grouped by stencil size so that all
    discs of a group are painted with one vectorised scatter.
    """
    if len(radii_px) == 0:
        return
    H, W = mask.shape
    half = np.ceil(radii_px + 1.0).astype(int)
    for h in np.unique(half):
        sel = half == h
        cx, cy, r = centres_px[sel, 0], centres_px[sel, 1], radii_px[sel]
        off = np.arange(-h, h + 1)
        col = np.floor(cx).astype(int)[:, None, None] + off[None, None, :]
        row = np.floor(cy).astype(int)[:, None, None] + off[None, :, None]
        inside = (col + 0.5 - cx[:, None, None]) ** 2 + (row + 0.5 - cy[:, None, None]) ** 2 < (r**2)[:, None, None]
        row, col = np.broadcast_arrays(row, col)
        if periodic:
            mask[row[inside] % H, col[inside] % W] = True
        else:
            ok = inside & (row >= 0) & (row < H) & (col >= 0) & (col < W)
            mask[row[ok], col[ok]] = True


def wrap(x: np.ndarray, extent: float) -> np.ndarray:
    """x mod extent, strictly below extent (a tiny negative would round up to extent, outside the tree)."""
    x = np.mod(x, extent)
    return np.where(x >= extent, 0.0, x)
