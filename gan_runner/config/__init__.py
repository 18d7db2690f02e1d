"""The run's config: schema.py holds the types and defaults of every key, checks.py validates a
composed config (one-line ConfigError naming the key and what is allowed). Neither imports
TensorFlow or MLflow. What other modules use is re-exported here, loaded on first use: importing
config.schema alone (the registry does) must not pull in checks.py, which needs the registry."""

import importlib

_EXPORTS = {
    "checks": ("CONF_DIR", "DATA_SCHEMAS", "MODEL_SCHEMAS", "check_group_overrides", "compose", "did_you_mean",
               "flatten", "group_options", "known_keys", "user_keys", "validate"),
    "schema": ("OPTIMIZER_COMMON_PARAMS", "OPTIMIZER_PARAMS", "RunConf"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["ConfigError", *sorted(_WHERE)]


def __getattr__(name: str):
    if name == "ConfigError":
        from gan_runner.errors import ConfigError

        return ConfigError
    if name not in _WHERE:
        raise AttributeError(f"module 'gan_runner.config' has no attribute '{name}'")
    return getattr(importlib.import_module(f"gan_runner.config.{_WHERE[name]}"), name)
