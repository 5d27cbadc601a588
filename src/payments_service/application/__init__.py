"""Application service: use cases over the domain, the repository and the processor ports."""
