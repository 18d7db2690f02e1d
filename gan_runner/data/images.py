"""Reading MNIST-style image files with gzip + numpy only (no TensorFlow): IDX files (gzipped
or not) and Keras-format .npz. Every read is checked: gzip integrity, the IDX magic number,
28x28 images, the byte count, and the known checksums of the official files.

A file whose checksum is known (by its name, for this data set) and does not match is an
error: it is damaged, or it is another data set under an official name. A gzipped file also
passes when its decompressed payload matches (distributions such as Debian recompress).
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_runner.errors import DataError

IMAGE_HW = (28, 28)
IDX_IMAGES = 0x00000803  # IDX magic: 0, 0, type 0x08 (uint8), 3 dimensions
IDX_LABELS = 0x00000801  # 1 dimension: a label file
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ImageSet:
    title: str
    cache_subdir: str  # under <keras home>/datasets
    npz: str | None = None  # Keras-format archive name, if Keras uses one
    system_dirs: tuple[str, ...] = ()
    checksums: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> {"md5:..", "sha256:.."}

    def candidates(self) -> list[str]:
        """Image files in the order tried in a folder: training images first (the seed's data)."""
        npz = [self.npz] if self.npz else []
        return [
            "train-images-idx3-ubyte.gz",
            "train-images-idx3-ubyte",
            *npz,
            "t10k-images-idx3-ubyte.gz",
            "t10k-images-idx3-ubyte",
        ]

    def expected(self) -> str:
        """What a folder given as data.path should hold, for error messages."""
        npz = f", {self.npz}" if self.npz else ""
        return f"train-images-idx3-ubyte.gz{npz} or t10k-images-idx3-ubyte.gz (gzipped or not)"


def _known(*digests: str) -> frozenset[str]:
    return frozenset(digests)


IMAGE_SETS: dict[str, ImageSet] = {
    # MNIST: md5 of the official .gz files (LeCun, Cortes, Burges); raw = the decompressed
    # payload (computed from the official t10k files); mnist.npz: the sha256 Keras checks.
    "mnist": ImageSet(
        "MNIST",
        "",
        npz="mnist.npz",
        checksums={
            "train-images-idx3-ubyte.gz": _known("md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "t10k-images-idx3-ubyte.gz": _known("md5:9fb629c4189551a2d022fa330f9573f3"),
            "t10k-images-idx3-ubyte": _known("md5:2646ac647ad5339dbf082846283269ea"),
            "mnist.npz": _known("sha256:731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
            # label files (gan_runner/metrics/classifier.py): official .gz md5s; raw = the t10k payload
            "train-labels-idx1-ubyte.gz": _known("md5:d53e105ee54ea40749a09fcbcd1e9432"),
            "t10k-labels-idx1-ubyte.gz": _known("md5:ec29112dd5afa0611ce80d1b7f02629c"),
            "t10k-labels-idx1-ubyte": _known("md5:27ae3e4e09519cfbb04c329615203637"),
        },
    ),
    # Fashion-MNIST: the first md5 of each .gz is Zalando's (their README, also shipped in
    # /usr/share/doc/dataset-fashion-mnist); the second is Debian's recompressed file
    # (dataset-fashion-mnist 0.0~git20200523.55506a9-1); raw = the decompressed payload of those.
    "fashion_mnist": ImageSet(
        "Fashion-MNIST",
        "fashion-mnist",
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        checksums={
            "train-images-idx3-ubyte.gz": _known(
                "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d", "md5:cf8536b0aa1a6ac5fa3f23001093305c"
            ),
            "t10k-images-idx3-ubyte.gz": _known(
                "md5:bef4ecab320f06d8554ea6380940ec79", "md5:f78720b4224f21cce2f2ccf2d7a94c9a"
            ),
            "train-images-idx3-ubyte": _known("md5:f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            "t10k-images-idx3-ubyte": _known("md5:8181f5470baa50b63fa0f6fddb340f0a"),
            "train-labels-idx1-ubyte.gz": _known(
                "md5:25c81989df183df01b3e8a0aad5dffbe", "md5:10bea18fdb374794d4bb42e356e600c9"
            ),
            "t10k-labels-idx1-ubyte.gz": _known(
                "md5:bb300cfdad3c16e7a12a480ee83cd310", "md5:0d30e22e447f3c33dab9ed536400ac01"
            ),
            "train-labels-idx1-ubyte": _known("md5:9018921c3c673c538a1fc5bad174d6f9"),
            "t10k-labels-idx1-ubyte": _known("md5:15d484375f8d13e6eb1aabb0c3f46965"),
        },
    ),
}


def read_images(path: Path, spec: ImageSet) -> np.ndarray:
    """uint8 images (N, 28, 28) from an IDX file (.gz or not) or a Keras .npz."""
    try:
        stored = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if path.suffix == ".npz":
        pixels = _read_npz(path)
        _verify(path, spec, {path.name: stored})
        return pixels
    payload = _gunzip(path, stored)
    pixels = parse_idx(payload, str(path))
    _verify(path, spec, _blobs(path, stored, payload))
    return pixels


def read_labels(path: Path, spec: ImageSet) -> np.ndarray:
    """uint8 labels (N,) from an IDX label file (.gz or not), checked like the images."""
    try:
        stored = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    payload = _gunzip(path, stored)
    labels = parse_idx_labels(payload, str(path))
    _verify(path, spec, _blobs(path, stored, payload))
    return labels


def _gunzip(path: Path, stored: bytes) -> bytes:
    """The IDX bytes of a file: decompressed if it is gzipped (the magic bytes decide)."""
    if stored[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(stored)
        except (OSError, EOFError, zlib.error) as err:  # bad CRC, truncated, garbage
            raise DataError(f"{path}: corrupt or truncated gzip file ({err}); replace it with a fresh copy") from None
    if path.suffix == ".gz":
        raise DataError(f"{path}: not a gzip file (it does not start with the gzip magic bytes 1f 8b)")
    return stored


def _blobs(path: Path, stored: bytes, payload: bytes) -> dict[str, bytes]:
    """What a checksum may match: the file as stored, and its decompressed payload."""
    blobs = {path.name: stored}
    if payload is not stored:
        blobs[path.name.removesuffix(".gz")] = payload
    return blobs


def _check_magic(payload: bytes, where: str, wanted: int) -> None:
    """The IDX magic number must be `wanted`; images for labels (or the reverse) get a hint."""
    kinds = {IDX_IMAGES: "images", IDX_LABELS: "labels"}
    magic = struct.unpack(">I", payload[:4])[0] if len(payload) >= 4 else None
    if magic in kinds and magic != wanted:
        raise DataError(
            f"{where}: holds {kinds[magic]} (IDX magic 0x{magic:08x}), not {kinds[wanted]}; "
            f"point at the *-{kinds[wanted]}-* file"
        )
    if magic is not None and magic != wanted:
        raise DataError(
            f"{where}: not an IDX {kinds[wanted][:-1]} file (magic number 0x{magic:08x}, expected 0x{wanted:08x})"
        )


def parse_idx_labels(payload: bytes, where: str) -> np.ndarray:
    """IDX label bytes -> (N,) uint8 view. Big-endian header: magic 0x801, then N."""
    _check_magic(payload, where, IDX_LABELS)
    if len(payload) < 8:
        raise DataError(f"{where}: truncated IDX file ({len(payload)} bytes; the label header alone is 8)")
    n = struct.unpack(">I", payload[4:8])[0]
    if len(payload) - 8 != n:
        raise DataError(f"{where}: truncated or padded IDX file ({len(payload) - 8} labels, the header says {n})")
    return np.frombuffer(payload, np.uint8, offset=8)


def parse_idx(payload: bytes, where: str) -> np.ndarray:
    """IDX image bytes -> (N, 28, 28) uint8 view. Big-endian header: magic, then N, rows, cols."""
    _check_magic(payload, where, IDX_IMAGES)
    if len(payload) < 16:
        raise DataError(f"{where}: truncated IDX file ({len(payload)} bytes; the image header alone is 16)")
    n, rows, cols = struct.unpack(">III", payload[4:16])
    if (rows, cols) != IMAGE_HW:
        raise DataError(f"{where}: images are {rows}x{cols}, expected 28x28")
    if len(payload) - 16 != n * rows * cols:
        raise DataError(
            f"{where}: truncated or padded IDX file ({len(payload) - 16} bytes of pixels, "
            f"the header says {n} x {rows} x {cols} = {n * rows * cols})"
        )
    return np.frombuffer(payload, np.uint8, offset=16).reshape(n, rows, cols)


def _read_npz(path: Path) -> np.ndarray:
    """x_train (else x_test) of a Keras-format archive."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            key = next((k for k in ("x_train", "x_test") if k in archive.files), None)
            if key is None:
                raise DataError(
                    f"{path}: no x_train or x_test array in it (has: {', '.join(archive.files) or 'nothing'})"
                )
            pixels = archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(
            f"{path}: not a readable .npz archive ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    return check_shape(pixels, f"{path}:{key}")


def read_npz_labels(path: Path) -> np.ndarray | None:
    """y_train of a Keras-format archive (y_test when it holds only x_test), None if absent."""
    with np.load(path, allow_pickle=False) as archive:
        part = "train" if "x_train" in archive.files else "test"
        return np.asarray(archive[f"y_{part}"]) if f"y_{part}" in archive.files else None


def check_shape(pixels: np.ndarray, where: str) -> np.ndarray:
    """(N, 28, 28) or (N, 28, 28, 1) uint8 -> (N, 28, 28)."""
    if pixels.ndim == 4 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 3 or pixels.shape[1:] != IMAGE_HW:
        raise DataError(f"{where}: images have shape {pixels.shape}, expected (N, 28, 28)")
    if pixels.dtype != np.uint8:
        raise DataError(f"{where}: pixels are {pixels.dtype}, expected uint8 (0-255)")
    return pixels


def _verify(path: Path, spec: ImageSet, blobs: dict[str, bytes]) -> None:
    """Pass if any blob matches a known digest for its name, or nothing is known for them."""
    known = {name: spec.checksums[name] for name in blobs if name in spec.checksums}
    if not known:
        return
    for name, digests in known.items():
        for digest in digests:
            algo, _, hexdigest = digest.partition(":")
            if hashlib.new(algo, blobs[name]).hexdigest() == hexdigest:
                return
    name, digests = next(iter(known.items()))
    algo = next(iter(digests)).partition(":")[0]
    got = hashlib.new(algo, blobs[name]).hexdigest()
    raise DataError(
        f"{path}: checksum mismatch ({algo} {got}; the official {spec.title} file has "
        f"{' or '.join(d.partition(':')[2] for d in sorted(digests))}): a damaged file or another data set"
    )
