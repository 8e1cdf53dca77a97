"""Metrics, exactly as the papers define them."""
