"""Catalogue ingest: read, decode, embed and write to Milvus with Ray Data."""
