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


def test_techniques_jobs_below_one_is_refused_before_any_run():
    proc = subprocess.run(
        [sys.executable, "-m", "gan_runner.bench", "techniques", "--jobs", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--jobs 0: runs at a time must be 1 or more" in proc.stderr


def test_scoreboard_table_and_readme_rewrite_on_the_real_readme(tmp_path):
    """The README's scoreboard block regenerated from recorded rows: a section's rows replace
    their old versions, rows of sections not run stay, text outside the markers is untouched,
    a bar inside a cell survives, and a second rewrite with the same rows changes nothing."""
    from rich.console import Console

    from gan_runner.bench import common

    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    before = readme.read_text()
    assert before.count(common.README_START) == 1 and before.count(common.README_END) == 1
    first = [
        {"work": "whole CLI", "measured": "9.0 s", "target": "<= 8 s", "passed": False},
        {"work": "DCGAN step", "measured": "81% of peak", "target": ">= 85%", "passed": False},
        {"work": "GPU step", "measured": "no GPU here", "target": "|x| <= 1", "passed": None},
    ]
    common.rewrite_readme(readme, first, "day 1, box A")
    again = [{"work": "whole CLI", "measured": "7.5 s", "target": "<= 8 s", "passed": True}]
    common.rewrite_readme(readme, again, "day 2, box B")
    text = readme.read_text()
    start, end = text.index(common.README_START), text.index(common.README_END)
    assert text[:start] == before[: before.index(common.README_START)]
    assert text[end:] == before[before.index(common.README_END) :]
    block = text[start:end]
    assert "| whole CLI | 7.5 s | <= 8 s | pass | day 2, box B |" in block and "9.0 s" not in block
    assert "| DCGAN step | 81% of peak | >= 85% | FAIL | day 1, box A |" in block
    assert "| GPU step | no GPU here | \\|x\\| <= 1 | not measured here | day 1, box A |" in block
    common.rewrite_readme(readme, again, "day 2, box B")
    assert readme.read_text() == text
    # the table `make bench` ends with: every row with its mark
    console = Console(record=True, width=200)
    console.print(common.scoreboard_table(first))
    shown = console.export_text()
    assert all(w in shown for w in ("whole CLI", "FAIL", "not measured here", "81% of peak"))
    readme.write_text("no markers here\n")
    try:
        common.rewrite_readme(readme, first, "x")
    except ValueError as err:
        assert "scoreboard:start" in str(err)
    else:
        raise AssertionError("a README without the markers was accepted")


def test_bench_readme_without_markers_is_refused_before_any_section_runs(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no scoreboard\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gan_runner.bench", "gaussian1d", "--readme", str(readme)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no <!-- scoreboard:start -->" in proc.stderr
    assert readme.read_text() == "# no scoreboard\n"


def test_techniques_bench_continued_in_its_folder_runs_only_what_is_missing(tmp_path, client, store):
    """`--folder`: a plan whose run name and seed have a FINISHED run in the kept store is not run
    again; the missing one is. The missing plan here is a real CLI run that fails at once (an
    unknown loss), so the bench reports it, and the finished plan would fail the same way if it
    were run: only the one missing run may be tried."""
    import pytest

    from gan_runner.bench import techniques

    exp = client.create_experiment(techniques.EXPERIMENT)
    finished = client.create_run(exp, run_name="seed_dcgan/300 steps", tags={"seed": "0"})
    client.log_metric(finished.info.run_id, "perf/loop_s", 1.0)
    client.set_terminated(finished.info.run_id)
    bad = ["model=dcgan", "loss=no_such_loss", "train_steps=1"]
    plans = [
        [*bad, "seed=0", "tracking.run_name=seed_dcgan/300 steps"],  # finished: skipped
        [*bad, "seed=1", "tracking.run_name=seed_dcgan/300 steps"],  # missing: run, and it fails
    ]
    with pytest.raises(subprocess.CalledProcessError) as failed:
        techniques._run_all(plans, store, tmp_path, jobs=2)
    assert "seed=1" in failed.value.cmd and "seed=0" not in failed.value.cmd
    techniques._run_all(plans[:1], store, tmp_path, jobs=2)  # everything finished: nothing runs
