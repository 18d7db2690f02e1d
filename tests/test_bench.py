"""`make bench`: the FLOP count behind the README's GFLOP/s figures, checked against a count by
hand from the seed's layer shapes, and the bench CLI's handling of a wrong section name. (The
sections themselves take minutes; they are run by `make bench`, not here.)"""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, compose_cfg

B = 64
# The seed's DCGAN, one sample, 2 x multiply-adds, layer by layer ("same" padding).
G_HAND = (
    2 * 100 * 7 * 7 * 128  # Dense 100 -> 7*7*128
    + 2 * 5 * 5 * 128 * 128 * 7 * 7  # Conv2DTranspose 128, stride 2: each of the 7x7 input pixels scatters 5x5x128
    + 2 * 5 * 5 * 128 * 64 * 14 * 14  # Conv2DTranspose 64, stride 2, on 14x14
    + 2 * 5 * 5 * 64 * 32 * 28 * 28  # Conv2DTranspose 32, stride 1, on 28x28
    + 2 * 5 * 5 * 32 * 1 * 28 * 28
)  # Conv2DTranspose 1, stride 1
D_HAND = (
    2 * 5 * 5 * 1 * 32 * 14 * 14  # Conv2D 32, stride 2: 28 -> 14
    + 2 * 5 * 5 * 32 * 64 * 7 * 7  # Conv2D 64, stride 2: 14 -> 7
    + 2 * 5 * 5 * 64 * 128 * 4 * 4  # Conv2D 128, stride 2: 7 -> 4
    + 2 * 5 * 5 * 128 * 256 * 4 * 4  # Conv2D 256, stride 1
    + 2 * 4 * 4 * 256
)  # Dense 4096 -> 1


def test_dcgan_flops_match_a_count_by_hand():
    from gan_runner.bench.dcgan import forward_flops, step_flops
    from gan_runner.models import dcgan

    cfg = compose_cfg(["model=dcgan", "tracking=none"])
    generator = dcgan.build_generator(cfg.model)
    discriminator = dcgan.build_discriminator(cfg.model, (28, 28, 1))
    assert forward_flops(generator, (100,)) == G_HAND == 203_212_800
    assert forward_flops(discriminator, (28, 28, 1)) == D_HAND == 38_107_392
    # alternating: G forward 4x (D's fakes; G's forward + backward = 3x), D 8x (2B: fwd + bwd 3x;
    # B fakes through D in G's update: fwd + input bwd 2x); simultaneous saves one G forward
    assert step_flops(G_HAND, D_HAND, B, "alternating") == (4 * G_HAND + 8 * D_HAND) * B
    assert round(step_flops(G_HAND, D_HAND, B, "alternating") / 1e9, 1) == 71.5  # README
    assert round(step_flops(G_HAND, D_HAND, B, "simultaneous") / 1e9, 1) == 58.5


def test_unknown_bench_section_is_one_line_and_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "gan_runner.bench", "gaussian"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "unknown section gaussian; known: gaussian1d, sweep, dcgan, quality" in proc.stderr
