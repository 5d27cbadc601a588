"""Logging (and, from the observability work on, tracing and metrics) set-up."""
