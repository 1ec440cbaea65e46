"""Relevance you can measure: labelled query sets, their metrics, a generated benchmark, reports."""
