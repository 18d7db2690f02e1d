"""Config schemas: the types of every key, as dataclasses OmegaConf merges the composed config
into (gan_runner/config/checks.py does the merging and the range checks). No default values
here: conf/*.yaml holds each default once (MISSING = the YAML must give it; tests/test_config.py
checks). Imports neither TensorFlow nor MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

# ---- schemas (types only; ranges are checked in _check_ranges) ----------------------------


@dataclass
class NetOptim:
    learning_rate: float = MISSING


@dataclass
class OptimizerConf:
    name: str = MISSING
    d: NetOptim = field(default_factory=NetOptim)
    g: NetOptim = field(default_factory=NetOptim)
    params: dict[str, Any] = MISSING


@dataclass
class BatchConf:
    size: int = MISSING
    order: str = MISSING
    reuse_noise: bool = MISSING


@dataclass
class LabelsConf:
    real: float = MISSING
    fake: float = MISSING


@dataclass
class ClassifierConf:
    """The digit classifier behind eval/fd, eval/mnist_score, eval/coverage (gan_runner/metrics/classifier.py)."""

    cache_dir: Optional[str] = MISSING  # null: $XDG_CACHE_HOME/gan_runner, else ~/.cache/gan_runner
    filters: list[int] = MISSING  # Conv2D(f, 3, relu) -> MaxPool(2) each
    dense: int = MISSING
    dropout: float = MISSING
    train_steps: int = MISSING  # Adam updates, whatever the number of training digits
    batch_size: int = MISSING
    learning_rate: float = MISSING
    seed: int = MISSING


@dataclass
class EvalConf:
    n_fake: int = MISSING
    bins: int = MISSING
    coverage_threshold: float = MISSING  # eval/coverage: classes with at least this fraction of the samples
    metrics: Optional[list[str]] = MISSING  # image models: which eval/* metrics (conf/model/dcgan.yaml lists them)
    prdc_k: Optional[int] = MISSING  # image models: k of the k-NN balls of eval/precision, recall, density, coverage_nn
    classifier: ClassifierConf = field(default_factory=ClassifierConf)


@dataclass
class TrainerConf:
    update: str = MISSING
    intra_op_threads: int = MISSING
    inter_op_threads: int = MISSING
    strategy: str = MISSING
    d_steps: int = MISSING  # D updates per G update (n_critic); train_steps counts G updates
    onednn: Optional[bool] = MISSING  # TF_ENABLE_ONEDNN_OPTS before TF loads; None = TF's choice
    precision: str = MISSING  # float32 | mixed_float16 | mixed_bfloat16 (models/precision.py)
    jit_compile: bool = MISSING  # XLA-compile the step loop (models/gan.py)


@dataclass
class TrackingConf:
    name: str = MISSING
    uri: Optional[str] = MISSING
    experiment: str = MISSING
    run_name: Optional[str] = MISSING
    flush_every_s: float = MISSING
    log_model: bool = MISSING  # at the end, also log the generator as an MLflow Keras model
    register: Optional[str] = MISSING  # Model Registry name: the run's (a sweep's best job's) generator


@dataclass
class SweepConf:
    fail_fast: bool = MISSING
    penalty: float = MISSING
    resume: Optional[str] = MISSING  # parent run id | last: continue a killed sweep under the same parent


@dataclass
class WeightsConf:
    load: Optional[str] = MISSING


@dataclass
class CheckpointConf:
    every: int = MISSING  # steps; 0 = only at the end and on Ctrl-C / SIGTERM
    keep: int = MISSING
    dir: Optional[str] = MISSING  # None: beside the SQLite store, else <cwd>/checkpoints


@dataclass
class EarlyStopConf:
    patience: int = MISSING  # 0 = off; else stop after this many logged values of `metric` >= threshold
    metric: str = MISSING
    threshold: float = MISSING


@dataclass
class LossConf:
    name: str = MISSING


@dataclass
class NoPenalty:
    name: str = MISSING


@dataclass
class GradientPenalty:
    name: str = MISSING
    weight: float = MISSING  # lambda (Gulrajani et al. 2017)


@dataclass
class R1Penalty:
    name: str = MISSING
    gamma: float = MISSING  # gamma / 2 * E ||grad D(x)||^2 on real data (Mescheder et al. 2018)


@dataclass
class EmaConf:
    decay: Optional[float] = MISSING  # None: no EMA generator
    start_step: int = MISSING  # a plain copy of G before this G update


@dataclass
class Gaussian1dModel:
    name: str = MISSING
    noise_dim: int = MISSING
    hidden: int = MISSING
    d_spectral_norm: bool = MISSING


@dataclass
class Normal1dData:
    name: str = MISSING
    mean: float = MISSING
    std: float = MISSING
    n: int = MISSING


@dataclass
class DcganModel:
    name: str = MISSING
    latent_dim: int = MISSING
    kernel_size: int = MISSING
    g_start: int = MISSING  # G's first feature map is g_start x g_start x g_filters[0]
    g_filters: list[int] = MISSING
    g_strides: list[int] = MISSING
    d_filters: list[int] = MISSING
    d_strides: list[int] = MISSING
    leaky_slope: float = MISSING
    d_spectral_norm: bool = MISSING
    grid_rows: int = MISSING  # the sample grid logged every sample_every steps
    grid_cols: int = MISSING


@dataclass
class CdcganModel:
    """The DCGAN's keys (less grid_rows: the grid has one row per class) and the conditioning."""

    name: str = MISSING
    latent_dim: int = MISSING  # z; G's input is [z | one_hot(y)]
    kernel_size: int = MISSING
    g_start: int = MISSING
    g_filters: list[int] = MISSING
    g_strides: list[int] = MISSING
    d_filters: list[int] = MISSING
    d_strides: list[int] = MISSING
    leaky_slope: float = MISSING
    d_spectral_norm: bool = MISSING
    grid_cols: int = MISSING  # the sample grid: one row per class, one fixed z per column
    cond: str = MISSING  # how D sees the label: projection | concat | acgan (config/checks.py CONDS)
    class_loss_weight: float = MISSING  # acgan: weight of the class cross-entropy in D's and G's loss


@dataclass
class ImageData:
    name: str = MISSING
    path: Optional[str] = MISSING  # folder or file; null = the Keras cache, system folders, download
    n: Optional[int] = MISSING  # use the first n images; null = all
    download: bool = MISSING  # last resort when nothing is found: keras.datasets.<name>.load_data()


@dataclass
class RunConf:
    seed: int = MISSING
    train_steps: int = MISSING
    log_every: int = MISSING
    eval_every: int = MISSING
    sample_every: int = MISSING
    plot_every: int = MISSING
    objective: str = MISSING
    objective_mode: str = MISSING
    batch: BatchConf = field(default_factory=BatchConf)
    labels: LabelsConf = field(default_factory=LabelsConf)
    eval: EvalConf = field(default_factory=EvalConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    weights: WeightsConf = field(default_factory=WeightsConf)
    checkpoint: CheckpointConf = field(default_factory=CheckpointConf)
    early_stop: EarlyStopConf = field(default_factory=EarlyStopConf)
    resume: Optional[str] = MISSING  # run id | checkpoint folder | last
    on_divergence: str = MISSING  # raise train.Diverged | penalty: run() returns sweep.penalty
    optimizer: OptimizerConf = field(default_factory=OptimizerConf)
    schedule: dict[str, Any] = field(default_factory=dict)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    sweep: SweepConf = field(default_factory=SweepConf)
    loss: LossConf = field(default_factory=LossConf)
    ema: EmaConf = field(default_factory=EmaConf)
    penalty: Any = None
    model: Any = None
    data: Any = None


# Per-name schemas of the penalty group (its keys depend on the choice; models and data: registry.py).
PENALTY_SCHEMAS: dict[str, type] = {"none": NoPenalty, "gp": GradientPenalty, "r1": R1Penalty}
SCHEDULE_PARAMS: dict[str, dict[str, type]] = {
    "constant": {},
    "inverse_time": {"decay_rate": float, "decay_steps": int},
    "exponential": {"decay_rate": float, "decay_steps": int},
    "cosine": {"decay_steps": int, "alpha": float},
}
# Parameters that may stay null for both networks (cosine: decay over the whole run).
SCHEDULE_NULLABLE = {("cosine", "decay_steps")}
# optimizer.params: the Keras constructor's keywords (tests/test_config_space.py checks them
# against keras.optimizers' signatures). learning_rate is not one: it is optimizer.d / .g.
OPTIMIZER_PARAMS: dict[str, tuple[str, ...]] = {
    "rmsprop": ("rho", "momentum", "epsilon", "centered"),
    "adam": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "sgd": ("momentum", "nesterov"),
}
OPTIMIZER_COMMON_PARAMS = (
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)
