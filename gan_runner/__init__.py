"""gan_runner: config-driven GAN experiments (Hydra + Keras 3 + MLflow)."""

__version__ = "0.1.0"
