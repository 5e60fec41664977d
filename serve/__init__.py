"""Serving zoo generators over HTTP (``zoo serve``): any width, dynamic batching, latency budgets, metrics,
a page, and Ray Serve for more than one process.  See docs/serving.md."""
