"""Semantic segmentation of STEM images and the microstructure statistics derived from it (issue #4)."""
