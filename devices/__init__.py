"""grainloop devices."""
