"""`make bench` / `python -m gan_runner.bench [section ...]`: the speed and quality figures the
README quotes, measured on this machine. Each section prints a small table.

Sections (one module each in gan_runner/bench/): gaussian1d (the seed's full 1-D schedule
through the real CLI); sweep (8 such jobs, basic launcher vs joblib, and a job's overhead);
dcgan (step time, GFLOP/s against the numpy matmul peak, peak RSS); quality (the DCGAN's
eval/fd, eval/mnist_score, eval/coverage next to real digits, and what judging costs).
"""

from __future__ import annotations

import argparse

from gan_runner.bench.dcgan import bench_dcgan
from gan_runner.bench.gaussian1d import bench_gaussian1d
from gan_runner.bench.quality import bench_quality
from gan_runner.bench.sweep import bench_sweep

SECTIONS = {"gaussian1d": bench_gaussian1d, "sweep": bench_sweep, "dcgan": bench_dcgan, "quality": bench_quality}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gan_runner.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", help=f"any of: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    for name in args.sections or SECTIONS:
        SECTIONS[name](args.repeats)


if __name__ == "__main__":
    main()
