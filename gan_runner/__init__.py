"""gan_runner: config-driven GAN experiments (Hydra + Keras 3 + MLflow)."""

import os

# TensorFlow's C++ INFO/WARNING lines (CPU features, oneDNN) bury the runner's own output; set
# before TensorFlow can load, and only if the user has not chosen a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
