"""An MLflow experiment pipeline for pruning recurrent neural networks."""

__version__ = "0.1.0"
