"""Server interceptors, one concern each. `chain.build_interceptors` composes them in order."""
