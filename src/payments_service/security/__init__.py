"""Caller identity and transport security: API keys, authentication, TLS credentials."""
