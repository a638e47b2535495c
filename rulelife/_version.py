"""The package version, in the kernel so that any layer can stamp it (bundles do) without importing the façade."""

__version__ = "0.1.0"
