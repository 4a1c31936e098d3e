"""Runners: each cell in its own subprocess; results kept as cells finish."""
