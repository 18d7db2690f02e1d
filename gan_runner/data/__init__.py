"""Real data as float32 numpy arrays: datasets.py picks and loads a data config's set,
images.py reads and checks IDX / .npz image files. No TensorFlow. What other modules use is
re-exported here (`data.load(cfg.data, seed)`)."""

from gan_runner.data.datasets import LOADERS, find_images, image_labels, label_files, load
from gan_runner.errors import DataError

__all__ = ["DataError", "LOADERS", "find_images", "image_labels", "label_files", "load"]
