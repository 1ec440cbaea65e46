"""Visualized BGE: our inference implementation of the official model."""
