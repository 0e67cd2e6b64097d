"""Processed cache -> batches: split tables, feature stores, the sampler and the DataModule; only reads
(`butd.preparation` builds the cache)."""
