"""Lowest layer of Pardus: the separately scaled units (embedder, reranker, the Milvus
catalogue), their settings, and nothing that imports serve/, ingest/ or cli/."""
