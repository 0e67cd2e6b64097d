"""Training: the LightningModule (`module`), the reference loss and the VQA metrics (`metrics`),
callbacks (`callbacks`), checkpoints that survive crashes and resume (`checkpoints`), and the
jobs of a Hydra multirun (`sweep`)."""
