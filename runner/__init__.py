"""Hailuo Batch: a declarative batch runner for Leonardo.AI's Hailuo 2.3 video models."""

__version__ = "0.1.0"
