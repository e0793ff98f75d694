"""Twin: an open geospatial digital-twin server for provincial operations centres."""

__version__ = "0.1.0"
