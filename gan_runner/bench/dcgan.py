"""`make bench ARGS=dcgan`: the DCGAN's step time at batch 64, its achieved GFLOP/s next to
this machine's float32 matmul peak (numpy), and the peak RSS of a default run.

Variants run in worker processes (`python -m gan_runner.bench.dcgan --worker ...`), since
TensorFlow's thread pools and oneDNN are fixed when it loads. The rounds interleave the
workers (A, B, C, A, B, C, ...) and each worker interleaves the two update rules step by
step, so a machine shared with other jobs slows every variant alike: compare the ratios.
Besides wall time, each step's process CPU time is recorded: it barely moves with load.

FLOPs of one step, counted from the layer shapes (multiply-adds x 2; BatchNorm, activations
and optimizer updates are left out, so the count is a lower bound of the work done):
  forward per sample   Dense: 2*in*units; Conv2D: 2*k*k*cin*cout * Hout*Wout;
                       Conv2DTranspose: 2*k*k*cin*cout * Hin*Win (each input pixel scatters a
                       k x k x cout patch)
  backward             2x forward when the layer's weights and its input both need gradients,
                       1x when only the input does (D inside the G update)
  alternating (seed)   D update: G fwd (B) + D fwd+bwd (2B, 3x)
                       G update: G fwd+bwd (B, 3x) + D fwd + input bwd (B, 2x)
                       = 4 Gf B + 8 Df B
  simultaneous         G fwd+bwd (B, 3x) + D fwd (2B) + D bwd for D's loss (2B, 2x)
                       + D input bwd for G's loss (on the whole concatenated 2B batch, 1x)
                       = 3 Gf B + 8 Df B: one G forward fewer
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.table import Table

from gan_runner.bench.common import console, dcgan_worker, record_target

BATCH = 64
MNIST_ENV = "GAN_RUNNER_MNIST"  # set by `make bench`
FASHION = Path("/usr/share/datasets/fashion-mnist")  # 60,000 training images: a full-size default run
UPDATES = ("alternating", "simultaneous")
# label -> trainer overrides. TensorFlow itself turns oneDNN on only on CPUs with AVX-512.
VARIANTS = {
    "oneDNN off (TF's default without AVX-512)": ["trainer.onednn=false"],
    "oneDNN on (dcgan default)": ["trainer.onednn=true"],
    "oneDNN, inter_op_threads=1": ["trainer.onednn=true", "trainer.inter_op_threads=1"],
}
DEFAULT = "oneDNN on (dcgan default)"  # the variant the scoreboard's row reads


# ---- what the machine can do ----------------------------------------------------------------


def matmul_peak(n: int = 2048, repeats: int = 7) -> tuple[float, float]:
    """float32 GFLOP/s of numpy's n x n matmul (its BLAS, all cores), best of `repeats`: per
    second of wall time, and per second of CPU time (all threads; less sensitive to load)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    a @ b  # warm-up: BLAS threads, page faults
    walls, cpus = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        a @ b
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    flops = 2 * n**3 / 1e9
    return flops / min(walls), flops / min(cpus)


# ---- FLOPs from the layers ----------------------------------------------------------------------


def forward_flops(model, input_shape: tuple[int, ...]) -> int:
    """Multiply-add FLOPs (x 2) of one sample through `model`'s Dense / Conv2D /
    Conv2DTranspose layers, following the shapes layer by layer."""
    import keras

    shape, total = (1, *input_shape), 0
    for layer in model.layers:
        out = tuple(layer.compute_output_shape(shape))
        if isinstance(layer, keras.layers.Conv2DTranspose):  # kernel (k, k, cout, cin)
            k1, k2, cout, cin = layer.kernel.shape
            total += 2 * k1 * k2 * cin * cout * shape[1] * shape[2]
        elif isinstance(layer, keras.layers.Conv2D):  # kernel (k, k, cin, cout)
            k1, k2, cin, cout = layer.kernel.shape
            total += 2 * k1 * k2 * cin * cout * out[1] * out[2]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
        shape = out
    return total


def step_flops(g_flops: int, d_flops: int, batch: int, update: str) -> int:
    """FLOPs of one D + G step (see the module docstring for the counting rule)."""
    g_passes = 4 if update == "alternating" else 3
    return (g_passes * g_flops + 8 * d_flops) * batch


# ---- worker: one process, both update rules interleaved --------------------------------------


def worker(steps: int, overrides: list[str]) -> dict:
    """Build the default DCGAN once per update rule (batch 64, the real digits), warm up, then
    time `steps` single steps of each, alternating between them."""
    from gan_runner import config, data, train

    base = ["model=dcgan", "tracking=none", f"batch.size={BATCH}", *_data_args(), *overrides]
    cfgs = {u: config.validate(config.compose([*base, f"trainer.update={u}"])) for u in UPDATES}
    real = data.load(cfgs[UPDATES[0]].data, 0)
    gans = {u: train.build_gan(cfg, real) for u, cfg in cfgs.items()}
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port  # the only way to ask whether oneDNN is on

    for gan in gans.values():
        gan.run_steps(2)  # trace + warm-up
    wall: dict[str, list[float]] = {u: [] for u in UPDATES}
    cpu: dict[str, list[float]] = {u: [] for u in UPDATES}
    for _ in range(steps):
        for update, gan in gans.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            float(gan.run_steps(1)["d_loss"])  # float() waits for the step
            wall[update].append(time.perf_counter() - started)
            cpu[update].append(time.process_time() - cpu_started)
    gan = gans[UPDATES[0]]
    g_f = forward_flops(gan.generator, (gan.config.latent_dim,))
    d_f = forward_flops(gan.discriminator, tuple(real.shape[1:]))
    return {
        "wall": wall,
        "cpu": cpu,
        "flops": {u: step_flops(g_f, d_f, BATCH, u) for u in UPDATES},
        "onednn": bool(_pywrap_util_port.IsMklEnabled()),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],  # the step runs on the first
        "threads": [
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        ],
    }


def _data_args() -> list[str]:
    mnist = os.environ.get(MNIST_ENV)
    return [f"data.path={mnist}"] if mnist else []


# ---- peak memory of a default run -------------------------------------------------------------


def peak_rss_of_default_run(steps: int = 50) -> tuple[float, str, float]:
    """(peak RSS in MiB, which data, wall s) of `python -m gan_runner model=dcgan train_steps=50`
    with everything else default (batch 64, eval, sample grid, weights, the Keras model), on
    60,000 Fashion-MNIST images when installed (the size of MNIST's training set), else on the
    MNIST folder of $GAN_RUNNER_MNIST. os.wait4 gives that one child's rusage."""
    data_args, what = (
        (["data=fashion_mnist"], "Fashion-MNIST, 60,000 images")
        if FASHION.is_dir()
        else (_data_args(), "MNIST test digits, 10,000 images")
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)
        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gan_runner",
                "model=dcgan",
                f"train_steps={steps}",
                f"tracking.uri=sqlite:///{Path(tmp) / 'mlflow.db'}",
                *data_args,
            ],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"default dcgan run failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, what, wall  # ru_maxrss is in KiB on Linux


# ---- the section ----------------------------------------------------------------------------------


def bench_dcgan(repeats: int, steps: int = 5) -> None:
    """`repeats` rounds over VARIANTS, `steps` timed steps of each update rule per worker."""
    load = os.getloadavg()[0]
    peak, peak_per_cpu_s = matmul_peak()
    results: dict[str, list[dict]] = {label: [] for label in VARIANTS}
    for _ in range(repeats):
        for label, overrides in VARIANTS.items():
            results[label].append(dcgan_worker(steps, overrides))
    rss, rss_data, rss_wall = peak_rss_of_default_run()

    table = Table(
        title=f"dcgan, batch {BATCH}: median over {repeats} x {steps} steps per row "
        f"(load average {load:.1f} on {os.cpu_count()} cores at the start)"
    )
    for column in (
        "variant",
        "update",
        "s/step",
        "steps/s",
        "vs first row",
        "GFLOP/step",
        "GFLOP/s",
        "% of matmul peak",
        "CPU s/step",
        "GFLOP per CPU s",
        "% of matmul per CPU s",
    ):
        table.add_column(column, justify="left" if column in ("variant", "update") else "right")
    reference, default = None, None
    for label, runs in results.items():
        for update in UPDATES:
            wall = statistics.median(x for r in runs for x in r["wall"][update])
            cpu = statistics.median(x for r in runs for x in r["cpu"][update])
            flops = runs[0]["flops"][update] / 1e9
            reference = reference or wall
            if label == DEFAULT and update == UPDATES[0]:
                default = 100 * flops / cpu / peak_per_cpu_s
            threads = "/".join(str(t or "TF default") for t in runs[0]["threads"])
            flags = f" [dim](oneDNN {'on' if runs[0]['onednn'] else 'off'}, intra/inter threads {threads})[/dim]"
            table.add_row(
                label + flags,
                update,
                f"{wall:.3f}",
                f"{1 / wall:.2f}",
                f"{wall / reference:.2f}x",
                f"{flops:.1f}",
                f"{flops / wall:.0f}",
                f"{100 * flops / wall / peak:.0f}%",
                f"{cpu:.3f}",
                f"{flops / cpu:.0f}",
                f"{100 * flops / cpu / peak_per_cpu_s:.0f}%",
            )
    console.print(table)
    console.print(
        f"float32 matmul peak (numpy 2048 x 2048, best of 7): {peak:.0f} GFLOP/s, {peak_per_cpu_s:.0f} GFLOP "
        f"per CPU second. Target: <= 0.5 s/step. On a busy machine trust the CPU columns and the ratios."
    )
    record_target(
        f"DCGAN step, batch {BATCH}, {DEFAULT.split(' (')[0]}, alternating: GFLOP per CPU s / numpy sgemm's (same run)",
        f"{default:.0f}%",
        ">= 85%",
        default >= 85,
    )
    console.print(
        f"peak RSS of a default run (train_steps=50, {rss_data}): {rss:.0f} MiB in {rss_wall:.0f} s "
        f"(target <= 2048 MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="the DCGAN benchmark (a worker, or the whole section)")
    parser.add_argument("--worker", action="store_true", help="time steps in this process; print JSON")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.steps, args.overrides)))
    else:
        bench_dcgan(args.repeats, args.steps)


if __name__ == "__main__":
    main()
