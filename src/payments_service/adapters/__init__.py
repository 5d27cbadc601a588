"""Adapters: the implementations of the domain's ports (stores, the simulated processor, the
clock and ids) and the decorators that trace them. Only `bootstrap` picks which ones run."""
