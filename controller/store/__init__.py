"""The run store: every run in Tiled (bluesky's TiledWriter), arrays as external HDF5 assets."""
