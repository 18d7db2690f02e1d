"""Config schemas: the types (and defaults) of every key, as dataclasses OmegaConf merges the
composed config into (gan_runner/config/checks.py does the merging and the range checks).
Imports neither TensorFlow nor MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

# ---- schemas (types only; ranges are checked in _check_ranges) ----------------------------


@dataclass
class NetOptim:
    learning_rate: float = 1e-3


@dataclass
class OptimizerConf:
    name: str = "rmsprop"
    d: NetOptim = field(default_factory=NetOptim)
    g: NetOptim = field(default_factory=NetOptim)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchConf:
    size: int = 64
    order: str = "random"
    reuse_noise: bool = False


@dataclass
class LabelsConf:
    real: float = 1.0
    fake: float = 0.0


@dataclass
class ClassifierConf:
    """The digit classifier behind eval/fd, eval/mnist_score, eval/coverage (gan_runner/metrics/classifier.py)."""
    cache_dir: Optional[str] = None  # null: $XDG_CACHE_HOME/gan_runner, else ~/.cache/gan_runner
    filters: list[int] = field(default_factory=lambda: [16, 32])  # Conv2D(f, 3, relu) -> MaxPool(2) each
    dense: int = 128
    dropout: float = 0.3
    train_steps: int = 800  # Adam updates, whatever the number of training digits
    batch_size: int = 64
    learning_rate: float = 2.0e-3
    seed: int = 0


@dataclass
class EvalConf:
    n_fake: int = 20000
    bins: int = 100
    coverage_threshold: float = 0.02  # eval/coverage: classes with at least this fraction of the samples
    metrics: Optional[list[str]] = None  # image models: which eval/* metrics (conf/model/dcgan.yaml lists them)
    prdc_k: Optional[int] = None  # image models: k of the k-NN balls of eval/precision, recall, density, coverage_nn
    classifier: ClassifierConf = field(default_factory=ClassifierConf)


@dataclass
class TrainerConf:
    update: str = "alternating"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    strategy: str = "default"
    d_steps: int = 1  # D updates per G update (n_critic); train_steps counts G updates
    onednn: Optional[bool] = None  # TF_ENABLE_ONEDNN_OPTS before TF loads; None = TF's choice


@dataclass
class TrackingConf:
    name: str = "mlflow"
    uri: Optional[str] = None
    experiment: str = "gan_runner"
    run_name: Optional[str] = None
    flush_every_s: float = 10.0
    log_model: bool = False  # at the end, also log the generator as an MLflow Keras model
    register: Optional[str] = None  # Model Registry name: the run's (a sweep's best job's) generator


@dataclass
class SweepConf:
    fail_fast: bool = False
    penalty: float = 1.0e6
    resume: Optional[str] = None  # parent run id | last: continue a killed sweep under the same parent


@dataclass
class WeightsConf:
    load: Optional[str] = None


@dataclass
class CheckpointConf:
    every: int = 1000  # steps; 0 = only at the end and on Ctrl-C / SIGTERM
    keep: int = 3
    dir: Optional[str] = None  # None: beside the SQLite store, else <cwd>/checkpoints


@dataclass
class EarlyStopConf:
    patience: int = 0  # 0 = off; else stop after this many logged values of `metric` >= threshold
    metric: str = "train/d_acc"
    threshold: float = 1.0


@dataclass
class LossConf:
    name: str = "ns"


@dataclass
class NoPenalty:
    name: str = "none"


@dataclass
class GradientPenalty:
    name: str = "gp"
    weight: float = 10.0  # lambda (Gulrajani et al. 2017)


@dataclass
class R1Penalty:
    name: str = "r1"
    gamma: float = 10.0  # gamma / 2 * E ||grad D(x)||^2 on real data (Mescheder et al. 2018)


@dataclass
class EmaConf:
    decay: Optional[float] = None  # None: no EMA generator
    start_step: int = 0  # a plain copy of G before this G update


@dataclass
class Gaussian1dModel:
    name: str = "gaussian1d"
    noise_dim: int = 16
    hidden: int = 32
    d_spectral_norm: bool = False


@dataclass
class Normal1dData:
    name: str = "normal1d"
    mean: float = 0.0
    std: float = 1.0
    n: int = 1000


@dataclass
class DcganModel:
    name: str = "dcgan"
    latent_dim: int = 100
    kernel_size: int = 5
    g_start: int = 7  # G's first feature map is g_start x g_start x g_filters[0]
    g_filters: list[int] = field(default_factory=lambda: [128, 64, 32, 1])
    g_strides: list[int] = field(default_factory=lambda: [2, 2, 1, 1])
    d_filters: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    d_strides: list[int] = field(default_factory=lambda: [2, 2, 2, 1])
    leaky_slope: float = 0.2
    d_spectral_norm: bool = False
    grid_rows: int = 4  # the sample grid logged every sample_every steps
    grid_cols: int = 4


@dataclass
class ImageData:
    name: str = "mnist"
    path: Optional[str] = None  # folder or file; null = the Keras cache, system folders, download
    n: Optional[int] = None  # use the first n images; null = all
    download: bool = True  # last resort when nothing is found: keras.datasets.<name>.load_data()


@dataclass
class RunConf:
    seed: int = 0
    train_steps: int = 3000
    log_every: int = 30
    eval_every: int = 30
    sample_every: int = 1000
    plot_every: int = 1000
    objective: str = "eval/kl_target"
    objective_mode: str = "min"
    batch: BatchConf = field(default_factory=BatchConf)
    labels: LabelsConf = field(default_factory=LabelsConf)
    eval: EvalConf = field(default_factory=EvalConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    weights: WeightsConf = field(default_factory=WeightsConf)
    checkpoint: CheckpointConf = field(default_factory=CheckpointConf)
    early_stop: EarlyStopConf = field(default_factory=EarlyStopConf)
    resume: Optional[str] = None  # run id | checkpoint folder | last
    on_divergence: str = "raise"  # raise train.Diverged | penalty: run() returns sweep.penalty
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
OPTIMIZER_COMMON_PARAMS = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
                           "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps")
