"""Lowest layer of Pardus: settings, model code and the vector store (no Ray Serve here)."""
