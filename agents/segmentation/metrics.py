"""Scores of a class map against the truth: confusion, IoU per class, boundary F1 with a pixel tolerance.

Used by training (validation), the model cards (`model_eval`) and bench/segmentation.py, so that every
number about a segmenter means the same thing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BOUNDARY_CLASS = 1
"""Class id of grain boundaries in STEM label maps."""


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) pixel counts, rows truth, columns prediction."""
    index = truth.astype(np.int64).ravel() * n_classes + predicted.astype(np.int64).ravel()
    return np.bincount(index, minlength=n_classes**2).reshape(n_classes, n_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of every class from a confusion matrix; NaN for classes absent from truth and prediction."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def boundary_hits(truth: np.ndarray, predicted: np.ndarray, tolerance_px: float = 2.0) -> np.ndarray:
    """[predicted boundary px near truth, predicted boundary px, true boundary px near prediction, true px]."""
    true_b, pred_b = truth == BOUNDARY_CLASS, predicted == BOUNDARY_CLASS
    near_truth = ndimage.distance_transform_edt(~true_b) <= tolerance_px if true_b.any() else np.zeros_like(true_b)
    near_pred = ndimage.distance_transform_edt(~pred_b) <= tolerance_px if pred_b.any() else np.zeros_like(pred_b)
    counts = (pred_b & near_truth, pred_b, true_b & near_pred, true_b)
    return np.array([np.count_nonzero(c) for c in counts], dtype=np.int64)


def boundary_f1(hits: np.ndarray) -> float:
    """F1 from (pooled) `boundary_hits` counts; 0 when either side has no boundary."""
    precision = hits[0] / hits[1] if hits[1] else 0.0
    recall = hits[2] / hits[3] if hits[3] else 0.0
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0
