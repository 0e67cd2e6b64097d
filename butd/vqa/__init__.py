"""The VQA conventions that preparation (raw files -> cache) and reading (cache -> batches) share:
tokenising and the vocabulary, answer normalisation and soft scores, the official per-question
accuracy, the sparse (CSR) tables, GQA's tables and metrics, and the feature TSV's rows."""
