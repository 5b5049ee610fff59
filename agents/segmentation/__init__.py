"""Semantic segmentation of STEM images and the microstructure statistics derived from it (issue #4)."""

import os

# OpenMP threads that spin while waiting for each other stall when other jobs share the 2 cores: measured
# here with other jobs running, a 512² U-Net pass took 1.04 s spinning and 0.19 s passive. libgomp reads
# this once, when torch loads, so it only helps if this package is imported before torch (the CLI does).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
