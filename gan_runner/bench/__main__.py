"""`make bench` / `python -m gan_runner.bench [section ...]`: the speed and quality figures the
README quotes, measured on this machine. Each section prints a small table.

Sections (one module each in gan_runner/bench/): gaussian1d (the seed's full 1-D schedule
through the real CLI); sweep (8 such jobs, basic launcher vs joblib, and a job's overhead);
dcgan (step time, GFLOP/s against the numpy matmul peak, peak RSS); quality (the DCGAN's
eval/fd, eval/mnist_score, eval/coverage next to real digits, and what judging costs); techniques
(losses, penalties, spectral norm, EMA: the 1-D GAN per loss, step-time overheads, the DCGAN presets
of experiments/ at equal steps and equal time, an FD chart); cond (the class-conditional DCGAN per
model.cond: class accuracy, FD and intra-class FD at --steps over --seeds, and its sample grid); gpu
(the DCGAN step per trainer.precision x trainer.jit_compile on the accelerator present, else the CPU).

After the sections, one table: every target a section recorded (common.record_target), with its
mark; `--readme README.md` also rewrites the README's scoreboard block from it.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

from gan_runner.bench.common import (
    README_END,
    README_START,
    SCOREBOARD,
    console,
    machine,
    rewrite_readme,
    scoreboard_table,
)
from gan_runner.bench.cond import CONDS, bench_cond
from gan_runner.bench.dcgan import bench_dcgan
from gan_runner.bench.gaussian1d import bench_gaussian1d
from gan_runner.bench.gpu import bench_gpu
from gan_runner.bench.quality import bench_quality
from gan_runner.bench.sweep import bench_sweep
from gan_runner.bench.techniques import PRESETS, bench_techniques

SECTIONS = {
    "gaussian1d": bench_gaussian1d,
    "sweep": bench_sweep,
    "dcgan": bench_dcgan,
    "quality": bench_quality,
    "techniques": bench_techniques,
    "cond": bench_cond,
    "gpu": bench_gpu,
}  # techniques' and cond's options: bound in main()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gan_runner.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sections", nargs="*", help=f"any of: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--readme",
        type=Path,
        metavar="PATH",
        help="rewrite the scoreboard block of this README (between <!-- scoreboard:start/end --> markers)",
    )
    parser.add_argument(
        "--seed-loop-epochs",
        type=int,
        default=20,
        metavar="N",
        help="gaussian1d: time the note's own Keras loop over N of its 1000 epochs (0: skip; ~0.3 s an epoch)",
    )
    techniques = parser.add_argument_group("techniques (gan_runner/bench/techniques.py)")
    techniques.add_argument("--steps", default="300,2000", help="G steps of each preset run, comma-separated")
    techniques.add_argument("--seeds", type=int, default=3, help="seeds per preset and per 1-D loss")
    techniques.add_argument("--presets", default=",".join(PRESETS), help="experiments/ to compare (comma-separated)")
    techniques.add_argument("--parts", default="1d,overheads,presets", help="the parts of the section to run")
    techniques.add_argument("--no-equal-time", action="store_true", help="skip the runs at seed_dcgan's time")
    techniques.add_argument("--jobs", type=int, default=1, help="preset runs at a time (cores split between them)")
    techniques.add_argument(
        "--folder", type=Path, default=None, help="continue the bench kept in this folder (its finished runs count)"
    )
    techniques.add_argument("--out", type=Path, default=Path("docs/techniques_fd.png"), help="the FD chart")
    cond = parser.add_argument_group("cond (gan_runner/bench/cond.py; also takes --steps and --seeds)")
    cond.add_argument("--conds", default=",".join(CONDS), help="model.cond values to compare (comma-separated)")
    cond.add_argument("--grid-out", type=Path, default=Path("docs/cdcgan_grid.png"), help="the row-per-class grid")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: runs at a time must be 1 or more")
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    SECTIONS["gaussian1d"] = functools.partial(bench_gaussian1d, seed_loop_epochs=args.seed_loop_epochs)
    SECTIONS["techniques"] = functools.partial(
        bench_techniques,
        steps=[int(n) for n in args.steps.split(",")],
        seeds=args.seeds,
        presets=args.presets.split(","),
        equal_time=not args.no_equal_time,
        out=args.out,
        parts=tuple(args.parts.split(",")),
        jobs=args.jobs,
        folder=args.folder,
    )
    SECTIONS["cond"] = functools.partial(
        bench_cond,
        steps=[int(n) for n in args.steps.split(",")],
        seeds=args.seeds,
        conds=args.conds.split(","),
        grid_out=args.grid_out,
    )
    if args.readme:  # found wrong now, not after the sections' minutes
        text = args.readme.read_text() if args.readme.is_file() else None
        if text is None or README_START not in text or README_END not in text:
            parser.error(f"--readme {args.readme}: no such file, or no {README_START} ... {README_END} block")
    for name in args.sections or SECTIONS:
        SECTIONS[name](args.repeats)
    if SCOREBOARD:  # a section that records no target (techniques, cond) prints no empty table
        console.print(scoreboard_table())
    if args.readme:
        rewrite_readme(args.readme, SCOREBOARD, f"{time.strftime('%Y-%m-%d')}, {machine()}")
        console.print(f"scoreboard written to {args.readme}")


if __name__ == "__main__":
    main()
