"""Training, data and metrics for ganzoo (imports nothing heavy at package import)."""
