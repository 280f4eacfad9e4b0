"""Read, validate and type the configuration.

`load_config(path)` reads the main file, merges the console settings file over it (layers.py), and
returns a frozen `Config` or raises `ConfigError` listing every problem at once, each one naming the
file and the key. `development_config()` is what `make run` uses with no file.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from appliance.config.checks import (
    MINIMUM_RETENTION_YEARS,
    Key,
    Problem,
    ae_title_problem,
    hl7_connection_problems,
    host_problems,
    mail_problems,
    mapping,
    mappings,
    pattern_problems,
    port_problems,
    retention_problems,
    threshold_problems,
    tier_problems,
)
from appliance.config.layers import (
    Layer,
    UnreadableLayer,
    console_settings_path,
    layer_problems,
    merged,
    read_layer,
    source_of,
)
from appliance.config.reporting import BillingConfig, DoseConfig, billing_config, dose_config

DEVELOPMENT_PORT = 11112
DEVELOPMENT_MOVE_DESTINATION_PORT = 11114
DEVELOPMENT_WORKLIST_PORT = 11113
DEVELOPMENT_HL7_PORT = 2575
DEVELOPMENT_WEB_PORT = 8080
DEVELOPMENT_SOURCE = "(embedded development defaults)"  # the main layer of `make run` without a file


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per problem, `file: key: what`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Peer:
    """A known DICOM application entity and what it may do."""

    ae_title: str
    host: str
    port: int
    rights: frozenset[str]
    description: str
    remote_archive: bool = False  # the box queries and retrieves from it (priors)

    def may(self, right: str) -> bool:
        """Whether this peer holds `right` (store, query, retrieve, worklist)."""
        return right in self.rights


@dataclass(frozen=True)
class ForwardRule:
    """Which instances go to `destination`: each non-empty criterion must match (A7)."""

    name: str
    destination: str
    enabled: bool
    calling_ae_titles: tuple[str, ...]
    modalities: tuple[str, ...]
    sop_classes: tuple[str, ...]
    study_descriptions: tuple[str, ...]


@dataclass(frozen=True)
class PrefetchRule:
    """Which priors to fetch for an order of `modality` ("*": any)."""

    modality: str
    prior_modalities: tuple[str, ...]
    same_body_region: bool
    years_back: int
    maximum_studies: int


@dataclass(frozen=True)
class ForwardConfig:
    rules: tuple[ForwardRule, ...]
    batch_size: int
    connect_timeout_seconds: int
    retry_initial_seconds: int
    retry_maximum_seconds: int
    refusals_before_parking: int
    prefetch: tuple[PrefetchRule, ...]

    def prefetch_rule(self, modality: str) -> PrefetchRule | None:
        """The first prefetch rule for an order of `modality`, if any."""
        return next((rule for rule in self.prefetch if rule.modality in ("*", modality)), None)


@dataclass(frozen=True)
class StorageConfig:
    data_directory: Path
    minimum_free_space_mb: int

    @property
    def archive_directory(self) -> Path:
        return self.data_directory / "archive"

    @property
    def incoming_directory(self) -> Path:
        return self.data_directory / "incoming"

    @property
    def quarantine_directory(self) -> Path:
        return self.data_directory / "quarantine"

    @property
    def index_directory(self) -> Path:
        return self.data_directory / "index"

    @property
    def run_directory(self) -> Path:
        """Where each running daemon keeps its PID file (the console asks them to reload)."""
        return self.data_directory / "run"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str


@dataclass(frozen=True)
class DicomConfig:
    ae_title: str
    bind_address: str
    port: int
    maximum_associations: int
    network_timeout_seconds: int
    dimse_timeout_seconds: int
    maximum_find_results: int
    maximum_associations_per_address: int
    maximum_pdu_bytes: int
    association_request_timeout_seconds: int
    processes: int


@dataclass(frozen=True)
class Station:
    """Where orders of a modality (and room) are scheduled when the RIS names no station."""

    ae_title: str
    modality: str
    room: str


@dataclass(frozen=True)
class WorklistProfile:
    """How one modality wants its worklist answers (W2)."""

    ae_title: str
    character_set: str
    return_keys: tuple[str, ...]
    patient_id_max_length: int
    patient_name_max_length: int
    patient_name_case: str  # recorded, upper
    patient_name_components: tuple[str, ...]  # of family, given, middle, prefix, suffix
    patient_family_name: str  # birth, used
    days_before: int
    days_after: int
    filter_on_calling_ae: bool
    maximum_items: int


@dataclass(frozen=True)
class WorklistConfig:
    ae_title: str
    bind_address: str
    port: int
    stations: tuple[Station, ...]
    study_complete_after_seconds: int
    profiles: tuple[WorklistProfile, ...]
    default_profile: WorklistProfile

    def profile_for(self, calling_ae_title: str) -> WorklistProfile:
        """The profile of the modality calling with this AE title, else the default one."""
        for profile in self.profiles:
            if profile.ae_title == calling_ae_title:
                return profile
        return self.default_profile

    def station_for(self, modality: str, room: str) -> str:
        """The scheduled station AE title of an order that names none ('' when nothing matches)."""
        for station in self.stations:
            if station.modality == modality and station.room in ("", room):
                return station.ae_title
        return ""


@dataclass(frozen=True)
class Hl7ConnectionsConfig:
    """How many MLLP connections the listener holds (`appliance.hl7.admission`)."""

    maximum: int
    per_address: int
    reserved: int
    trusted_addresses: frozenset[str]
    idle_timeout_seconds: int


@dataclass(frozen=True)
class RisLinkConfig:
    """Where and how messages for the RIS are sent (W5); `enabled` when a host is configured."""

    host: str
    port: int
    application: str
    facility: str
    version: str
    charset: str
    message: str
    retry_initial_seconds: int
    retry_maximum_seconds: int
    refusals_before_parking: int

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class Hl7Config:
    bind_address: str
    port: int
    application: str
    facility: str
    accepted_sending_facilities: frozenset[str]
    patient_id_authority: str
    maximum_message_kilobytes: int
    connections: Hl7ConnectionsConfig
    ris: RisLinkConfig
    refuse_test_ins: bool  # from `mode`: production refuses test and demonstration INS OIDs


@dataclass(frozen=True)
class LosslessConfig:
    enabled: bool
    transfer_syntax: str
    worker_processes: int
    delay_seconds: int


@dataclass(frozen=True)
class RetentionConfig:
    """The retention policy (R2); `years` already resolved (0 in the file = the practice's minimum)."""

    practice: str  # private_practice, health_establishment
    years: int
    until_age: int  # 0: no age rule


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str
    bucket: str
    prefix: str
    region: str
    credentials_file: str


@dataclass(frozen=True)
class LossyConfig:
    """Lossy compression of what moves to the deferred tier (R1; off by default)."""

    enabled: bool
    codec: str  # jpeg-2000, jpeg-ls-near-lossless
    compression_ratio: int
    maximum_error: int


@dataclass(frozen=True)
class TiersConfig:
    """The storage tiers (R1)."""

    immediate_years: int
    deferred: str  # none, folder, s3
    move_automatically: bool
    move_time: str
    directory: Path | None
    s3: S3Config
    lossy: LossyConfig = LossyConfig(enabled=False, codec="jpeg-2000", compression_ratio=10, maximum_error=2)

    @property
    def moves_on_schedule(self) -> bool:
        """Whether the worker queues the tier move each day at `move_time` (a deferred tier is set)."""
        return self.move_automatically and self.deferred != "none"


@dataclass(frozen=True)
class WebConfig:
    bind_address: str
    port: int
    workers: int
    threads: int
    idle_minutes: int
    session_hours: int
    secure_cookies: bool
    host_name: str
    public_base_url: str


@dataclass(frozen=True)
class SyslogConfig:
    host: str
    port: int
    protocol: str

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class AuditConfig:
    database: Path  # absolute
    retention_months: int
    syslog: SyslogConfig


@dataclass(frozen=True)
class MailConfig:
    relay_host: str
    relay_port: int
    sender: str
    recipients: tuple[str, ...]
    security: str = "none"  # none, starttls, tls
    username: str = ""
    password_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.relay_host and self.recipients)


@dataclass(frozen=True)
class UpsConfig:
    name: str
    host: str
    port: int

    @property
    def enabled(self) -> bool:
        return bool(self.name)


@dataclass(frozen=True)
class MonitorConfig:
    interval_seconds: int
    digest_time: str
    free_space_warning_percent: int
    free_space_critical_percent: int
    days_left_warning: int
    disk_temperature_warning_celsius: int
    certificate_days_warning: int
    mdstat_file: Path
    smartctl: str
    events_file: Path | None
    ups: UpsConfig
    units: tuple[str, ...]


@dataclass(frozen=True)
class UsbDisksConfig:
    labels: tuple[str, ...]
    mountpoint: Path
    stand_in_directory: Path | None  # development and tests: sub-folders named by label stand in for disks


@dataclass(frozen=True)
class DrillConfig:
    sample_studies: int
    day_of_month: int


@dataclass(frozen=True)
class BackupConfig:
    repository: str
    time: str
    passphrase_file: Path
    ssh_key_file: Path | None
    known_hosts_file: Path | None
    usb: UsbDisksConfig
    compression: str
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    keep_yearly: int
    borgmatic_file: Path
    state_directory: Path  # absolute
    drill: DrillConfig

    @property
    def enabled(self) -> bool:
        """Whether any target is configured (a repository or USB disks)."""
        return bool(self.repository or self.usb.labels)


@dataclass(frozen=True)
class MaintenanceConfig:
    """The maintenance tunnel (appliance.maintenance): where it goes and with which key."""

    bastion_host: str
    bastion_port: int
    bastion_user: str
    remote_port: int
    box_port: int
    known_hosts_file: Path
    key_file: Path
    default_hours: int
    alive_interval_seconds: int
    autossh: str

    @property
    def enabled(self) -> bool:
        """Whether a tunnel can be opened on this box (a bastion is configured)."""
        return bool(self.bastion_host)


@dataclass(frozen=True)
class QcConfig:
    time: str
    fixity_cycle_days: int


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, with every default filled in. `source` is the main file;
    `layers` the files read, main file first (the console settings file when it exists)."""

    source: str
    layers: tuple[str, ...]
    console_settings_file: Path
    mode: str
    site_name: str
    time_zone: str
    storage: StorageConfig
    database: DatabaseConfig
    dicom: DicomConfig
    peers: tuple[Peer, ...]
    forward: ForwardConfig
    worklist: WorklistConfig
    hl7: Hl7Config
    lossless: LosslessConfig
    retention: RetentionConfig
    tiers: TiersConfig
    web: WebConfig
    audit: AuditConfig
    mail: MailConfig
    backup: BackupConfig
    monitor: MonitorConfig
    qc: QcConfig
    dose: DoseConfig
    billing: BillingConfig
    logging_level: str
    maintenance: MaintenanceConfig

    @property
    def is_development(self) -> bool:
        return self.mode == "development"

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the index (SQLite under the data directory by default)."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.storage.index_directory / 'appliance.sqlite'}"

    def peer(self, ae_title: str) -> Peer | None:
        """The configured peer with this AE title, if any."""
        for peer in self.peers:
            if peer.ae_title == ae_title:
                return peer
        return None

    @property
    def remote_archives(self) -> tuple[Peer, ...]:
        """The peers the box queries and retrieves from (priors)."""
        return tuple(peer for peer in self.peers if peer.remote_archive)


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the configuration file."""
    text = resources.files("appliance.config").joinpath("schema.yaml").read_text("utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def load_config(path: Path) -> Config:
    """Read the main file at `path` and the console settings file it points to, merge, validate and
    return the typed configuration.

    Raises ConfigError naming the file and the key of every problem.
    """
    try:
        main = read_layer(path)
    except UnreadableLayer as error:
        raise ConfigError([f"{error.source}: {error}"]) from error
    assert main is not None
    return config_from_layers(with_console_settings(main))


def with_console_settings(main: Layer) -> list[Layer]:
    """The main layer, and the console settings over it when that file exists (raises ConfigError
    when it exists but cannot be read)."""
    default_data_directory = schema()["properties"]["storage"]["properties"]["data_directory"]["default"]
    try:
        console = read_layer(console_settings_path(main.document, default_data_directory), missing_ok=True)
    except UnreadableLayer as error:
        raise ConfigError([f"{error.source}: {error}"]) from error
    return [main] if console is None else [main, console]


def config_from_document(document: Any, source: str) -> Config:
    """Validate a parsed document (one layer, no console settings) and return the typed configuration
    (raises ConfigError)."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([f"{source}: the file must hold keys and values, not a {type(document).__name__}"])
    return config_from_layers([Layer(source, document)])


def config_from_layers(layers: list[Layer]) -> Config:
    """Merge the layers, validate the result as a whole and return the typed configuration.

    Raises ConfigError with every problem, each naming the file its key came from.
    """
    problems = configuration_problems(layers)
    if problems:
        raise ConfigError(problem_lines(problems, layers))
    filled = with_defaults(schema(), merged(layers))
    default_data_directory = filled["storage"]["data_directory"]
    return typed_config(filled, layers, console_settings_path(layers[0].document, default_data_directory))


def configuration_problems(layers: list[Layer]) -> list[Problem]:
    """Every problem of the layers merged (keys only the main file may set, schema, consistency),
    each naming its key; [] when the configuration is usable. The console's writer checks with it."""
    document = merged(layers)
    filled = with_defaults(schema(), copy.deepcopy(document))
    return layer_problems(layers) + validation_problems(document) + consistency_problems(filled)


def problem_lines(problems: list[Problem], layers: list[Layer]) -> list[str]:
    """`file: key: message`, once each: the main file's first, each file's in the order found."""
    sourced = [(source_of(problem.key, layers), problem) for problem in problems]
    order = [layer.source for layer in layers]
    sourced.sort(key=lambda pair: order.index(pair[0]))
    lines = [f"{source}: {key_path(problem.key)}: {problem.message}" for source, problem in sourced]
    return list(dict.fromkeys(lines))


def validation_problems(document: Any) -> list[Problem]:
    """Every schema violation of `document`, naming the key."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(document), key=lambda error: key_path(error.absolute_path))
    return [problem for error in errors for problem in explained(error)]


def explained(error: jsonschema.ValidationError) -> list[Problem]:
    """A schema error as problems naming the very key: an unknown or a missing key gets its own
    path, a refused AE title says why in words."""
    key: Key = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict) and isinstance(error.schema, dict):
        known = resolved(dict(error.schema)).get("properties", {})
        return [
            Problem((*key, name), f"unknown key (known here: {', '.join(known)})")
            for name in instance
            if name not in known
        ]
    if error.validator == "required" and isinstance(instance, dict) and isinstance(error.validator_value, list):
        return [Problem((*key, name), "required key missing") for name in error.validator_value if name not in instance]
    if error.validator == "pattern" and error.validator_value == ae_title_pattern() and isinstance(instance, str):
        return [Problem(key, ae_title_problem(instance) or error.message)]
    return [Problem(key, error.message)]


def ae_title_pattern() -> str:
    """The schema's regular expression of an AE title (its errors are explained in words)."""
    pattern: str = schema()["$defs"]["ae_title"]["pattern"]
    return pattern


def key_path(parts: Any) -> str:
    """`peers[1].ae_title` from a key (a jsonschema error path or a `Key`)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def resolved(node_schema: dict[str, Any]) -> dict[str, Any]:
    """A schema node with its local `$ref` (`#/$defs/...`) merged in."""
    reference = node_schema.get("$ref")
    if not reference:
        return node_schema
    target: dict[str, Any] = schema()
    for part in reference.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{key: value for key, value in node_schema.items() if key != "$ref"}}


def with_defaults(node_schema: dict[str, Any], value: Any) -> Any:
    """Fill the schema's defaults into `value`, recursively through objects and arrays."""
    node_schema = resolved(node_schema)
    if node_schema.get("type") == "object" and isinstance(value, dict):
        for name, property_schema in node_schema.get("properties", {}).items():
            if name not in value and "default" in property_schema:
                value[name] = copy.deepcopy(property_schema["default"])
            if name in value:
                value[name] = with_defaults(property_schema, value[name])
    elif node_schema.get("type") == "array" and isinstance(value, list):
        item_schema = node_schema.get("items", {})
        return [with_defaults(item_schema, item) for item in value]
    return value


def consistency_problems(document: Any) -> list[Problem]:
    """Problems a schema cannot express: duplicate peers and profiles, a peer named like the archive,
    impossible hosts, two services on one port. Values of the wrong type are left to the schema."""
    if not isinstance(document, dict):
        return []
    problems = host_problems(document) + port_problems(document) + threshold_problems(document)
    problems += mail_problems(document) + hl7_connection_problems(document) + pattern_problems(document)
    problems += retention_problems(document) + tier_problems(document)
    profiles = [profile.get("ae_title") for _, profile in mappings(mapping(document.get("worklist")).get("profiles"))]
    for position, title in enumerate(profiles):
        if not title or title in profiles[:position]:
            problems.append(Problem(("worklist", "profiles", position, "ae_title"), "empty or listed twice"))
    seen: set[str] = set()
    for position, peer in mappings(document.get("peers")):
        title = peer.get("ae_title")
        if not isinstance(title, str):
            continue
        if title in seen:
            problems.append(Problem(("peers", position, "ae_title"), f"{title!r} is listed twice"))
        if title == mapping(document.get("dicom")).get("ae_title"):
            problems.append(Problem(("peers", position, "ae_title"), f"{title!r} is the archive's own AE title"))
        seen.add(title)
    return problems + forward_problems(document, seen)


def forward_problems(document: dict[str, Any], peers: set[str]) -> list[Problem]:
    """A forwarding rule must send to a configured peer."""
    rules = mappings(mapping(document.get("forward")).get("rules"))
    return [
        Problem(("forward", "rules", position, "destination"), f"{rule['destination']!r} is not a configured peer")
        for position, rule in rules
        if isinstance(rule.get("destination"), str) and rule["destination"] not in peers
    ]


def typed_config(document: dict[str, Any], layers: list[Layer], console_settings_file: Path) -> Config:
    """Turn a validated, default-filled document into frozen dataclasses."""
    storage = document["storage"]
    lossless = document["lossless"]
    return Config(
        source=layers[0].source,
        layers=tuple(layer.source for layer in layers),
        console_settings_file=console_settings_file,
        mode=document["mode"],
        site_name=document["site_name"],
        time_zone=document["time_zone"],
        storage=StorageConfig(
            data_directory=Path(storage["data_directory"]).absolute(),
            minimum_free_space_mb=storage["minimum_free_space_mb"],
        ),
        database=DatabaseConfig(url=document["database"]["url"]),
        dicom=DicomConfig(**document["dicom"]),
        peers=tuple(
            Peer(
                ae_title=peer["ae_title"],
                host=peer["host"],
                port=peer["port"],
                rights=frozenset(peer["rights"]),
                description=peer["description"],
                remote_archive=peer["remote_archive"],
            )
            for peer in document["peers"]
        ),
        forward=forward_config(document["forward"]),
        worklist=worklist_config(document["worklist"]),
        hl7=hl7_config(document["hl7"], document["mode"]),
        lossless=LosslessConfig(**lossless),
        retention=retention_config(document["retention"]),
        tiers=tiers_config(document["tiers"]),
        web=WebConfig(**document["web"]),
        audit=audit_config(document["audit"], Path(storage["data_directory"]).absolute()),
        mail=MailConfig(**{**document["mail"], "recipients": tuple(document["mail"]["recipients"])}),
        backup=backup_config(document["backup"], Path(storage["data_directory"]).absolute()),
        monitor=monitor_config(document["monitor"]),
        qc=QcConfig(**document["qc"]),
        dose=dose_config(document["dose"]),
        billing=billing_config(document["billing"]),
        logging_level=document["logging"]["level"],
        maintenance=maintenance_config(document["maintenance"]),
    )


def maintenance_config(section: dict[str, Any]) -> MaintenanceConfig:
    return MaintenanceConfig(
        **{
            **section,
            "known_hosts_file": Path(section["known_hosts_file"]),
            "key_file": Path(section["key_file"]),
        }
    )


def retention_config(section: dict[str, Any]) -> RetentionConfig:
    minimum = MINIMUM_RETENTION_YEARS[section["practice"]]
    return RetentionConfig(section["practice"], section["years"] or minimum, section["until_age"])


def tiers_config(section: dict[str, Any]) -> TiersConfig:
    return TiersConfig(
        **{
            **section,
            "directory": Path(section["directory"]).absolute() if section["directory"] else None,
            "s3": S3Config(**section["s3"]),
            "lossy": LossyConfig(**section["lossy"]),
        }
    )


def forward_config(section: dict[str, Any]) -> ForwardConfig:
    rules = tuple(
        ForwardRule(
            name=rule["name"],
            destination=rule["destination"],
            enabled=rule["enabled"],
            calling_ae_titles=tuple(rule["calling_ae_titles"]),
            modalities=tuple(rule["modalities"]),
            sop_classes=tuple(rule["sop_classes"]),
            study_descriptions=tuple(rule["study_descriptions"]),
        )
        for rule in section["rules"]
    )
    prefetch = tuple(
        PrefetchRule(**{**rule, "prior_modalities": tuple(rule["prior_modalities"])}) for rule in section["prefetch"]
    )
    values = {key: value for key, value in section.items() if key not in ("rules", "prefetch")}
    return ForwardConfig(rules=rules, prefetch=prefetch, **values)


def audit_config(section: dict[str, Any], data_directory: Path) -> AuditConfig:
    database = Path(section["database"]) if section["database"] else Path("audit") / "audit.sqlite"
    return AuditConfig(
        database=data_directory / database,  # an absolute `database` stays as it is
        retention_months=section["retention_months"],
        syslog=SyslogConfig(**section["syslog"]),
    )


def backup_config(section: dict[str, Any], data_directory: Path) -> BackupConfig:
    usb = section["usb"]
    stand_in = usb["stand_in_directory"]
    return BackupConfig(
        **{
            **section,
            "passphrase_file": Path(section["passphrase_file"]),
            "ssh_key_file": Path(section["ssh_key_file"]) if section["ssh_key_file"] else None,
            "known_hosts_file": Path(section["known_hosts_file"]) if section["known_hosts_file"] else None,
            "usb": UsbDisksConfig(
                labels=tuple(usb["labels"]),
                mountpoint=Path(usb["mountpoint"]),
                stand_in_directory=Path(stand_in).absolute() if stand_in else None,
            ),
            "borgmatic_file": Path(section["borgmatic_file"]),
            "state_directory": data_directory / (section["state_directory"] or "backup"),
            "drill": DrillConfig(**section["drill"]),
        }
    )


def monitor_config(section: dict[str, Any]) -> MonitorConfig:
    return MonitorConfig(
        **{
            **section,
            "mdstat_file": Path(section["mdstat_file"]),
            "events_file": Path(section["events_file"]) if section["events_file"] else None,
            "ups": UpsConfig(**section["ups"]),
            "units": tuple(section["units"]),
        }
    )


def worklist_config(section: dict[str, Any]) -> WorklistConfig:
    return WorklistConfig(
        ae_title=section["ae_title"],
        bind_address=section["bind_address"],
        port=section["port"],
        stations=tuple(Station(**station) for station in section["stations"]),
        study_complete_after_seconds=section["study_complete_after_seconds"],
        profiles=tuple(worklist_profile(profile) for profile in section["profiles"]),
        default_profile=worklist_profile(section["default_profile"]),
    )


def hl7_config(section: dict[str, Any], mode: str) -> Hl7Config:
    return Hl7Config(
        bind_address=section["bind_address"],
        port=section["port"],
        application=section["application"],
        facility=section["facility"],
        accepted_sending_facilities=frozenset(section["accepted_sending_facilities"]),
        patient_id_authority=section["patient_id_authority"],
        maximum_message_kilobytes=section["maximum_message_kilobytes"],
        connections=Hl7ConnectionsConfig(
            **{**section["connections"], "trusted_addresses": frozenset(section["connections"]["trusted_addresses"])}
        ),
        ris=RisLinkConfig(**section["ris"]),
        refuse_test_ins=mode == "production",
    )


def worklist_profile(profile: dict[str, Any]) -> WorklistProfile:
    return WorklistProfile(
        **{
            **profile,
            "return_keys": tuple(profile["return_keys"]),
            "patient_name_components": tuple(profile["patient_name_components"]),
        }
    )


def development_document(data_directory: Path) -> dict[str, Any]:
    """The embedded development settings: loopback, unprivileged ports, data under `data_directory`."""
    return {
        "mode": "development",
        "site_name": "Development appliance",
        "storage": {"data_directory": str(data_directory), "minimum_free_space_mb": 100},
        "dicom": {"ae_title": "APPLIANCE", "bind_address": "127.0.0.1", "port": DEVELOPMENT_PORT},
        # findscu calls as FINDSCU, which is no modality: in development every order is shown to every
        # caller, whatever its Scheduled Station AE Title (an order with none included).
        "worklist": {
            "bind_address": "127.0.0.1",
            "port": DEVELOPMENT_WORKLIST_PORT,
            "default_profile": {"filter_on_calling_ae": False},
        },
        "hl7": {"bind_address": "127.0.0.1", "port": DEVELOPMENT_HL7_PORT},
        "peers": [
            {
                "ae_title": "STORESCP",
                "host": "127.0.0.1",
                "port": DEVELOPMENT_MOVE_DESTINATION_PORT,
                "rights": ["store", "query", "retrieve"],
                "description": "C-MOVE destination for trying movescu with DCMTK's storescp",
            }
        ],
        "lossless": {"delay_seconds": 5},
        # The hooks of mdadm, smartd and NUT are not installed here: their events file is the data folder's.
        "monitor": {"interval_seconds": 30, "events_file": str(data_directory / "events" / "events.jsonl")},
        # "Back up now" works from the console: a local borg repository in the data folder, its
        # passphrase made on first use (appliance.backup.local).
        "backup": {
            "repository": str(data_directory / "backup-repository"),
            "passphrase_file": str(data_directory / "backup" / "passphrase"),
            "ssh_key_file": "",
            "known_hosts_file": "",
            "borgmatic_file": str(data_directory / "backup" / "borgmatic.yaml"),
        },
        # Plain HTTP on loopback: the session cookie cannot be HTTPS-only.
        "web": {"bind_address": "127.0.0.1", "port": DEVELOPMENT_WEB_PORT, "secure_cookies": False},
    }


def development_config(data_directory: Path) -> Config:
    """The configuration `make run` uses when no file is given, with the console settings file of
    `data_directory` over it when there is one (raises ConfigError)."""
    main = Layer(DEVELOPMENT_SOURCE, development_document(data_directory))
    return config_from_layers(with_console_settings(main))


# What a reload cannot change in a running daemon: sockets are bound, files and the index are open.
NEEDS_RESTART: dict[str, Callable[[Config], object]] = {
    "storage.data_directory": lambda config: config.storage.data_directory,
    "database.url": lambda config: config.database_url,
    "dicom.ae_title": lambda config: config.dicom.ae_title,
    "dicom.bind_address": lambda config: config.dicom.bind_address,
    "dicom.port": lambda config: config.dicom.port,
    "dicom.processes": lambda config: config.dicom.processes,
    "worklist.ae_title": lambda config: config.worklist.ae_title,
    "worklist.bind_address": lambda config: config.worklist.bind_address,
    "worklist.port": lambda config: config.worklist.port,
    "hl7.bind_address": lambda config: config.hl7.bind_address,
    "hl7.port": lambda config: config.hl7.port,
    "web.bind_address": lambda config: config.web.bind_address,
    "web.port": lambda config: config.web.port,
    "audit.database": lambda config: config.audit.database,
}


class Settings:
    """The configuration in force in a running daemon. Services read `current` for each request, so
    that `reload()` (SIGHUP) applies peers, profiles, stations and the RIS link to the next
    association or message without dropping those in flight."""

    def __init__(self, load: Callable[[], Config]) -> None:
        self.load = load
        self.lock = threading.Lock()
        self._current = load()

    @property
    def current(self) -> Config:
        return self._current

    def reload(self) -> list[str]:
        """Read the configuration again and put it in force; return the changed keys that only a
        restart applies. Raises ConfigError (the configuration in force stays) when it is invalid."""
        with self.lock:
            loaded = self.load()
            ignored = [key for key, value in NEEDS_RESTART.items() if value(loaded) != value(self._current)]
            self._current = loaded
        return ignored
