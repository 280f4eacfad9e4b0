"""The configuration: one YAML file, validated against `schema.yaml`, read only by this package."""

from appliance.config.loader import (
    BackupConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    DicomConfig,
    LosslessConfig,
    MailConfig,
    MonitorConfig,
    Peer,
    QcConfig,
    Settings,
    StorageConfig,
    UpsConfig,
    development_config,
    load_config,
)

__all__ = [
    "BackupConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "DicomConfig",
    "LosslessConfig",
    "MailConfig",
    "MonitorConfig",
    "Peer",
    "QcConfig",
    "Settings",
    "StorageConfig",
    "UpsConfig",
    "development_config",
    "load_config",
]
