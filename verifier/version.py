"""The verifier's version, written into every report and results file (a base module, so that
any layer can name it without importing the package's front door)."""

__version__ = "0.1.0"
