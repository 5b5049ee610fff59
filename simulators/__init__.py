"""The physical world behind grainloop's simulated instruments (numpy/scipy/diffsims only)."""
