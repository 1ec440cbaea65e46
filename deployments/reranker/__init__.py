"""Vision-language reranking of retrieved candidates."""
