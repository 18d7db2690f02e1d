"""The run's config: schema.py holds the types and defaults of every key, checks.py validates a
composed config (one-line ConfigError naming the key and what is allowed). Neither imports
TensorFlow or MLflow. What other modules use is re-exported here."""

from gan_runner.config.checks import (
    CONF_DIR,
    check_group_overrides,
    compose,
    did_you_mean,
    flatten,
    group_options,
    known_keys,
    user_keys,
    validate,
)
from gan_runner.config.schema import DATA_SCHEMAS, MODEL_SCHEMAS, OPTIMIZER_COMMON_PARAMS, OPTIMIZER_PARAMS, RunConf
from gan_runner.errors import ConfigError

__all__ = ["CONF_DIR", "ConfigError", "DATA_SCHEMAS", "MODEL_SCHEMAS", "OPTIMIZER_COMMON_PARAMS", "OPTIMIZER_PARAMS",
           "RunConf", "check_group_overrides", "compose", "did_you_mean", "flatten", "group_options", "known_keys",
           "user_keys", "validate"]
