"""The manager: queue, history, worker supervision, campaigns and approvals (runs in the API process)."""
