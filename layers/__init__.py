"""The domain of Twin: layer definitions, their registry, the feature store and its backends.

This package knows nothing of HTTP or of the application around it; the
packages above it (``ogc``, ``tiles``, ``scenarios``, ``twin``) call into it.
"""
