"""The catalogue: the item model and its rules, filters, and the store on Milvus."""
