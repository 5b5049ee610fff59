"""grainloop agents."""
