"""The run's config: schema.py holds the types of every key (conf/ their defaults), checks.py
validates a composed config (one-line ConfigError naming the key and what is allowed). Neither imports
TensorFlow or MLflow. Their public names are reachable here (`config.validate`,
`config.UPDATES`), loaded on first use: importing config.schema alone (the registry does) must
not pull in checks.py, which needs the registry."""

import importlib

__all__ = [
    "CONF_DIR",
    "ConfigError",
    "DATA_SCHEMAS",
    "MODEL_SCHEMAS",
    "OPTIMIZER_COMMON_PARAMS",
    "OPTIMIZER_PARAMS",
    "RunConf",
    "check_group_overrides",
    "compose",
    "did_you_mean",
    "flatten",
    "group_options",
    "known_keys",
    "user_keys",
    "validate",
    "with_defaults",
]


def __getattr__(name: str):
    if name == "ConfigError":
        from gan_runner.errors import ConfigError

        return ConfigError
    if not name.startswith("_"):
        for module in ("checks", "schema"):
            found = getattr(importlib.import_module(f"gan_runner.config.{module}"), name, None)
            if found is not None:
                return found
    raise AttributeError(f"module 'gan_runner.config' has no attribute '{name}'")
