"""`make docs-images` (`python tools/docs_images.py`): the README's pictures, made by the
project itself from real runs in a scratch store, written as small PNGs to docs/:

- dcgan_samples_over_steps.png: the DCGAN's sample grid (fixed noise) at 4 steps of one run on
  MNIST (`--dcgan-steps`, default 1000 steps of the seed's DCGAN, batch 64);
- kde_1d.png: the 1-D GAN's KDE plot (real blue, fake red) after the seed's 3000 steps;
- mlflow_compare.png: the MLflow UI's compare view of a 3-job sweep of the 1-D GAN's
  generator learning rate (parallel coordinates: learning rate -> eval/kl_target), taken in
  headless Chromium from the UI that `make ui` starts;
- mlflow_runs.png: the same sweep's jobs in the UI's runs table as the sweep's printed link opens
  them (Model-training workspace, sorted by eval/kl_target, its column first).
`--ui-only` makes only the two UI pictures (the 1-D sweep, about a minute).

Every picture comes from `python -m gan_runner ...` as a user runs it; nothing is drawn by hand
except the row of grids (the grids themselves are the logged artifacts).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from browser import UiPage, chromium
from gan_runner import tracking, ui

MAX_BYTES = 200_000  # each picture stays small enough for a README in git
SWEEP_LRS = "2.5e-4,5e-4,1e-3"  # optimizer.g.learning_rate of the 1-D sweep (5e-4: the seed's)


def gan_runner(args: list[str], cwd: Path) -> None:
    """`python -m gan_runner <args>` as a user types it; its output goes to the terminal."""
    print("+ python -m gan_runner " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "gan_runner", *args], cwd=cwd, check=True)


def logged_grids(uri: str, run_id: str, key: str = "samples") -> dict[int, str]:
    """step -> artifact path of the PNG grids that tracker.log_image wrote under `key`."""
    found = {}
    for path in tracking.artifact_files(uri, run_id, "images"):
        match = re.fullmatch(rf"images/{key}\+step\+(\d+)\+.*(?<!compressed)\.png", path)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def grids_over_steps(uri: str, run_id: str, out: Path) -> Path:
    """The logged sample grids of one run side by side, each titled with its step."""
    import matplotlib.image

    from gan_runner import plots  # the Agg backend

    grids = logged_grids(uri, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        images = {
            step: matplotlib.image.imread(tracking.fetch_artifact(uri, run_id, path, tmp))
            for step, path in grids.items()
        }
    fig, axes = plots.plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.5), dpi=100)
    for ax, (step, image) in zip(axes, images.items()):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"step {step}")
        ax.axis("off")
    fig.suptitle("DCGAN on MNIST: the same 16 noise vectors over training", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plots.close(fig)
    return out


def best_kde_plot(uri: str, run, out: Path) -> Path:
    """The run's KDE plot at its last step, as logged."""
    (path,) = sorted(p for p in tracking.artifact_files(uri, run.info.run_id, "plots") if "kde_step" in p)[-1:]
    with tempfile.TemporaryDirectory() as tmp:
        out.write_bytes(tracking.fetch_artifact(uri, run.info.run_id, path, tmp).read_bytes())
    return out


def compare_screenshot(folder: Path, runs: list, metric: str, out: Path) -> Path:
    """The UI's compare view of `runs` (served as `make ui` serves it from `folder`), its
    parallel-coordinates plot set to `metric`."""
    with ui.serve(folder) as url:
        driver = chromium(1280, 1000)
        try:
            page = UiPage(driver, url)
            ids = json.dumps([r.info.run_id for r in runs])
            experiments = json.dumps(sorted({r.info.experiment_id for r in runs}))
            page.open(f"compare-runs?runs={urllib.parse.quote(ids)}&experiments={urllib.parse.quote(experiments)}")
            page.find(".js-plotly-plot")
            page.choose_metric(metric)
            time.sleep(1)  # Plotly's redraw
            page.screenshot(out)
        finally:
            driver.quit()
    return out


def runs_screenshot(folder: Path, parent_id: str, objective: str, out: Path) -> Path:
    """The runs table of a sweep's jobs through the link the sweep printed (tracking.sweep_view)."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    link = tracking.sweep_view(uri, parent_id, objective, "min")
    with ui.serve(folder) as url:
        driver = chromium(1280, 700)
        try:
            page = UiPage(driver, url)
            page.open(link.split("/#/", 1)[1].replace(f"&{ui.ML_VIEW}", ""))
            page.find(f"[data-testid='sort-header-{objective}']")
            time.sleep(1)  # the rows' values
            page.screenshot(out)
        finally:
            driver.quit()
    return out


def shrink(path: Path) -> Path:
    """256-colour palette PNG (screenshots and plots have few colours); fails if still too big."""
    from PIL import Image

    with Image.open(path) as image:
        image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path} is {size} bytes (limit {MAX_BYTES})"
    print(f"wrote {path} ({size // 1000} kB)", flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python tools/docs_images.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where the PNGs go (default: docs/)")
    parser.add_argument("--mnist", help="MNIST folder (data.path); default: where the runner finds it")
    parser.add_argument("--dcgan-steps", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, help="keep the runs' store here (default: a temp folder, removed)")
    parser.add_argument("--ui-only", action="store_true", help="only the UI pictures (no DCGAN run)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gan_runner-docs-") as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{work / 'mlflow.db'}"  # the runner's default store in `work`
        if not args.ui_only:
            started = time.monotonic()
            every = args.dcgan_steps // 4
            data = [f"data.path={args.mnist}"] if args.mnist else []
            gan_runner(
                [
                    "model=dcgan",
                    f"train_steps={args.dcgan_steps}",
                    f"sample_every={every}",
                    f"eval_every={every}",
                    "tracking.log_model=false",
                    "checkpoint.every=0",
                    "tracking.run_name=docs dcgan",
                    *data,
                ],
                cwd=work,
            )
            print(f"dcgan: {time.monotonic() - started:.0f} s", flush=True)
            (dcgan,) = tracking.experiment_runs(uri, "dcgan")
            shrink(grids_over_steps(uri, dcgan.info.run_id, args.out / "dcgan_samples_over_steps.png"))

        started = time.monotonic()
        gan_runner(
            [
                "-m",
                f"optimizer.g.learning_rate={SWEEP_LRS}",
                "checkpoint.every=0",
                f"hydra.sweep.dir={work / 'multirun'}",
            ],
            cwd=work,
        )
        print(f"1-D sweep: {time.monotonic() - started:.0f} s", flush=True)
        jobs = [r for r in tracking.experiment_runs(uri, "gaussian1d") if r.data.tags.get("sweep.role") != "parent"]
        (seed_job,) = [r for r in jobs if float(r.data.params["optimizer.g.learning_rate"]) == 5e-4]
        if not args.ui_only:
            shrink(best_kde_plot(uri, seed_job, args.out / "kde_1d.png"))
        shrink(compare_screenshot(work, jobs, "eval/kl_target", args.out / "mlflow_compare.png"))
        shrink(
            runs_screenshot(
                work, seed_job.data.tags["mlflow.parentRunId"], "eval/kl_target", args.out / "mlflow_runs.png"
            )
        )


if __name__ == "__main__":
    main()
