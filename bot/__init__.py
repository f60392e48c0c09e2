"""docgen: documents the Python functions a pull request changes."""

__version__ = "0.1.0"
