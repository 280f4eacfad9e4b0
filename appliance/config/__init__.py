"""The configuration: one YAML file, validated against `schema.yaml`, read only by this package."""

from appliance.config.loader import (
    Config,
    ConfigError,
    DatabaseConfig,
    DicomConfig,
    ForwardConfig,
    ForwardRule,
    LosslessConfig,
    MailConfig,
    MonitorConfig,
    Peer,
    PrefetchRule,
    Settings,
    StorageConfig,
    UpsConfig,
    development_config,
    load_config,
)

__all__ = [
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "DicomConfig",
    "ForwardConfig",
    "ForwardRule",
    "LosslessConfig",
    "MailConfig",
    "MonitorConfig",
    "Peer",
    "PrefetchRule",
    "Settings",
    "StorageConfig",
    "UpsConfig",
    "development_config",
    "load_config",
]
