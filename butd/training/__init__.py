"""Training: the LightningModule (`module`), the reference loss and the VQA metrics (`metrics`),
callbacks (`callbacks`, one module each), checkpoint files (`checkpoint_io`) and their callback
states (`callback_states`), resuming (`resume`), SLURM requeueing (`slurm`), and the jobs of a
Hydra multirun (`sweep`)."""
