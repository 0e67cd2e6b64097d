"""butd: Bottom-Up Top-Down attention VQA experiments on Lightning, Hydra, W&B and HDF5."""

__version__ = "0.1.0"
