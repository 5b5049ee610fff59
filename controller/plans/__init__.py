"""grainloop controller/plans."""
