"""Callbacks of a training run, one per module:

- `metrics_json.MetricsJSON`: the run's record on disk (metrics.json);
- `run_stats.RunStats`: what a comparison of runs needs (throughput, best score, size);
- `divergence.DivergenceGuard`: stops at the first non-finite loss or gradient norm;
- `rng_state.RNGState`: random number generator states that resume;
- `run_checkpoint.RunCheckpoint`: checkpoints that keep the best score across resumes;
- `resume_overrides.ResumeOverrides`: optimizer arguments a resume changed.

`conf/callbacks/default.yaml` names each by its module's path.
"""
