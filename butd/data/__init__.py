"""Raw VQA files to processed cache to batches."""
