"""Image data: the real MNIST test digits, the search order, and one clear error for every kind
of bad file (made in tmp_path; no data is committed). No TensorFlow is needed here."""

import gzip
import hashlib
import struct

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import FASHION, MNIST
from gan_runner import data
from gan_runner.data import DataError

needs_mnist = pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"no MNIST in {MNIST}")


def image_cfg(path=None, name="mnist", n=None, download=False):
    return OmegaConf.create({"name": name, "path": None if path is None else str(path), "n": n, "download": download})


def idx_bytes(images: np.ndarray, magic: int = 0x803) -> bytes:
    """An IDX image file: big-endian magic, N, rows, cols, then the uint8 pixels."""
    return struct.pack(">IIII", magic, *images.shape) + images.astype(np.uint8).tobytes()


def some_images(n=5, hw=(28, 28), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *hw), dtype=np.uint8)


def scaled(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


@pytest.fixture(autouse=True)
def empty_keras_home(tmp_path, monkeypatch):
    """No real ~/.keras cache may leak into a test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@needs_mnist
def test_reads_the_real_test_digits_from_a_folder_or_one_file():
    x = data.load(image_cfg(MNIST), seed=0)
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    raw = np.frombuffer(gzip.decompress((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes()), np.uint8, offset=16)
    np.testing.assert_array_equal(x.ravel(), raw.astype(np.float32) / 255.0)
    one = data.load(image_cfg(MNIST / "t10k-images-idx3-ubyte.gz", n=100), seed=0)
    np.testing.assert_array_equal(one, x[:100])


def test_training_images_come_before_test_images_and_npz_is_read(tmp_path):
    train, test = some_images(3, seed=1), some_images(4, seed=2)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(train))  # uncompressed IDX
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(test)))
    x = data.load(image_cfg(tmp_path), seed=0)  # (the test file would fail its MNIST checksum if read)
    np.testing.assert_array_equal(x[..., 0], scaled(train))
    npz = tmp_path / "digits.npz"
    np.savez(npz, x_train=test, y_train=np.zeros(4, np.uint8))
    np.testing.assert_array_equal(data.load(image_cfg(npz), seed=0)[..., 0], scaled(test))


def test_keras_cache_is_searched_when_no_path_is_given(tmp_path, monkeypatch):
    cache = tmp_path / "keras_home" / "datasets"  # keras.datasets.mnist keeps mnist.npz here
    cache.mkdir(parents=True)
    (cache / "train-images-idx3-ubyte").write_bytes(idx_bytes(some_images(6)))
    found, places = data.find_images("mnist", None)
    assert found == cache / "train-images-idx3-ubyte" and places[0] == cache
    assert data.load(image_cfg(), seed=0).shape == (6, 28, 28, 1)
    assert data.find_images("fashion_mnist", None)[1][0] == cache / "fashion-mnist"


def test_nothing_found_names_every_place_and_data_path(tmp_path):
    with pytest.raises(DataError) as err:
        data.load(image_cfg(), seed=0)
    message = str(err.value)
    assert "\n" not in message and "data.path=" in message and "mnist.npz" in message
    assert str(tmp_path / "keras_home" / "datasets") in message and "/tmp/.keras/datasets" in message
    with pytest.raises(DataError, match="data.path=.*no MNIST images there"):
        data.load(image_cfg(tmp_path), seed=0)  # an explicit path is the only place looked


def _truncated_gzip(tmp_path):
    return gzip.compress(idx_bytes(some_images(50)))[:-40]


def _flipped_gzip(tmp_path):
    blob = bytearray(gzip.compress(idx_bytes(some_images(50))))
    blob[len(blob) // 2] ^= 0xFF
    return bytes(blob)


BAD_FILES = {
    # file name, bytes -> words the one-line error must contain
    "truncated gzip": ("train-images-idx3-ubyte.gz", _truncated_gzip, "corrupt or truncated gzip"),
    "damaged gzip": ("train-images-idx3-ubyte.gz", _flipped_gzip, "corrupt or truncated gzip"),
    "not gzip": ("x.gz", lambda t: idx_bytes(some_images()), "not a gzip file"),
    "label file": (
        "x-idx1-ubyte.gz",
        lambda t: gzip.compress(struct.pack(">II", 0x801, 3) + b"\x01\x02\x03"),
        "holds labels",
    ),
    "wrong magic": ("x.gz", lambda t: gzip.compress(idx_bytes(some_images(), magic=0x0D03)), "magic number 0x00000d03"),
    "32x32": ("x.gz", lambda t: gzip.compress(idx_bytes(some_images(hw=(32, 32)))), "images are 32x32, expected 28x28"),
    "short pixels": ("x", lambda t: idx_bytes(some_images())[:-100], "truncated or padded IDX"),
    "header only": ("x", lambda t: b"\x00\x00\x08", "truncated IDX"),
    "npz wrong shape": ("x.npz", None, "expected (N, 28, 28)"),
    "npz garbage": ("x.npz", lambda t: b"PK\x03\x04 not a zip", "not a readable .npz"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_give_one_clear_line(tmp_path, case):
    name, make, words = BAD_FILES[case]
    path = tmp_path / name
    if make is None:
        np.savez(path, x_train=some_images(hw=(14, 14)))
    else:
        path.write_bytes(make(tmp_path))
    for source in (path, tmp_path) if name.startswith("train-") else (path,):
        with pytest.raises(DataError) as err:
            data.load(image_cfg(source), seed=0)
        assert words in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_official_name_with_other_content_fails_its_checksum(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(some_images())))
    with pytest.raises(DataError, match="checksum mismatch.*9fb629c4189551a2d022fa330f9573f3"):
        data.load(image_cfg(tmp_path), seed=0)
    (tmp_path / "mnist.npz").write_bytes(b"")
    np.savez(tmp_path / "mnist.npz", x_train=some_images())
    with pytest.raises(DataError, match="mnist.npz: checksum mismatch.*731c5ac6"):
        data.load(image_cfg(tmp_path / "mnist.npz"), seed=0)


@needs_mnist
def test_recompressed_official_file_passes_by_its_payload(tmp_path):
    payload = gzip.decompress((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))
    assert data.load(image_cfg(tmp_path, n=10), seed=0).shape == (10, 28, 28, 1)
    assert hashlib.md5(payload).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    with pytest.raises(DataError, match="checksum mismatch"):  # MNIST's digits are not Fashion-MNIST's
        data.load(image_cfg(MNIST, name="fashion_mnist"), seed=0)


@pytest.mark.usefixtures("fashion_mnist")
def test_fashion_mnist_from_the_debian_package_without_a_path():
    found, _ = data.find_images("fashion_mnist", None)
    assert found == FASHION / "train-images-idx3-ubyte.gz"
    x = data.load(image_cfg(name="fashion_mnist"), seed=0)  # checksums verified on the way
    assert x.shape == (60000, 28, 28, 1) and x.dtype == np.float32 and 0.2 < x.mean() < 0.4
