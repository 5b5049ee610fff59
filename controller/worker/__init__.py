"""The worker process: RunEngine, lab and plans, driven by the manager over a 0MQ command socket."""
