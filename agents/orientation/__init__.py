"""Crystal-orientation mapping of SPED (4D-STEM) scans and grain-boundary statistics (issue #5)."""

import os

# Spinning OpenMP waiters stall when other jobs share the 2 cores (measured for the segmentation agent);
# libgomp reads this once, when torch loads, so it only helps if this package is imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
