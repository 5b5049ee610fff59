"""grainloop controller."""
