"""Training: the LightningModule (`module`), the reference loss and the VQA metrics (`metrics`),
the steps of a run (`run`, from the typed config `validate` makes), callbacks (`callbacks`, one
module each), checkpoint files (`checkpoint_io`) and their callback states (`callback_states`),
resuming (`resume`), SLURM requeueing (`slurm`), and the jobs of a Hydra multirun (`sweep`)."""
