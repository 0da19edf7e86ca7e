"""One typed settings object, loaded once: cdp.yaml, overridden by CDP_* environment variables.

Secrets (the PII HMAC key, API tokens) are read from the environment only and never from
the YAML file, so a key can never be committed by accident.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from jobs.common.yamlio import load_yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def config_file() -> Path:
    return Path(os.environ.get("CDP_CONFIG", PROJECT_ROOT / "cdp.yaml")).resolve()


def _is_uri(value: str) -> bool:
    return "://" in value or value.startswith("file:")


def resolve_path(value: str, base: Path | None = None) -> str:
    """A relative local path is taken relative to the config file; URIs pass through."""
    if _is_uri(value):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base or config_file().parent) / path
    return str(path.resolve())


class SparkSettings(BaseModel):
    master: str = "local[*]"
    jars_dir: str = "var/jars/spark"
    shuffle_partitions: int = 4
    driver_memory: str = "4g"
    ui: bool = False


class KafkaSettings(BaseModel):
    bootstrap_servers: str = ""
    broker_jars_dir: str = "var/jars/kafka"
    events_topic: str = "cdp.events"
    triggers_topic: str = "cdp.triggers"


class AirflowSettings(BaseModel):
    home: str = "var/airflow"
    # Task retries of every DAG; tests set 0 so a failure shows at once instead of after retries.
    retries: int = 2
    retry_delay_minutes: float = 5.0
    # Each source family's sensor waits this long for the day's first landing file, then skips
    # that family (soft fail) so the others still flow.
    sensor_poke_seconds: float = 300.0
    sensor_timeout_minutes: float = 360.0
    # Runs of cdp_daily active at once: dates are independent, so one whose exports are late
    # (its sensors rescheduled, holding no worker slot) never holds another date back.
    max_active_runs: int = Field(default=4, ge=1)
    # The pool (one slot) through which the steps writing the shared silver and gold tables
    # take turns across runs; `cdp airflow`, `cdp dag-test` and `ensure_db` create it.
    lake_writers_pool: str = "cdp_lake_writers"
    # `cdp airflow` (scheduler, API server and DAG processor on the SQLite metadata DB): task
    # slots of the LocalExecutor, and the API server's port (bound to 127.0.0.1 only).
    parallelism: int = Field(default=4, ge=1)
    api_port: int = Field(default=8080, ge=1, le=65535)


class DbtSettings(BaseModel):
    project_dir: str = "dbt"


class StreamSettings(BaseModel):
    cart_abandon_seconds: int = 30
    checkpoint_dir: str = "var/checkpoints"


class YouzanSettings(BaseModel):
    """Youzan (有赞) Open API app of a brand's shop. The secret comes from the environment only
    (CDP_YOUZAN__CLIENT_SECRET), never from cdp.yaml."""

    base_url: str = "https://open.youzanyun.com"
    client_id: str = ""
    kdt_id: str = ""  # the shop id: grant_id of the silent (自用型) token
    client_secret: SecretStr | None = None


class QualitySettings(BaseModel):
    """Inputs of the run-time expectations of every bronze suite (GX `$PARAMETER`s)."""

    # Volume anomaly: a day's rows more than `volume_tolerance` off the median of the trailing
    # `volume_window_days` days that had data; judged once `volume_min_history_days` exist.
    volume_window_days: int = 7
    volume_tolerance: float = 0.3
    volume_min_history_days: int = 3
    # Freshness: the newest record of a day's export must be at most this old at the day's end.
    freshness_max_age_hours: float = 24.0
    # Readable reports in <reports_dir>/dt=YYYY-MM-DD/<suite>.txt; empty: {var_dir}/reports/quality
    reports_dir: str = ""


class IngestSettings(BaseModel):
    # Source datasets (or whole sources) this brand uses, e.g. [tmall, jd.orders]; empty = all
    # with a spec. The DAG waits for and ingests only these.
    sources: list[str] = []
    # Records dated up to this many days before the file's day still land (late records); the
    # days they belong to are marked for recomputation downstream (ops.recompute_days).
    lookback_days: int = 7
    # Entries of finished batches in ops.ingest_journal are kept this long (maintain_lake).
    journal_retention_days: int = 30


class SilverSettings(BaseModel):
    # A day's output of one silver table up to this many rows is written through Arrow and
    # delta-rs (no Spark job per commit: the fixed cost that dominates small days); larger
    # outputs are merged by Spark.
    arrow_max_rows: int = Field(default=300_000, ge=0)


class IdentitySettings(BaseModel):
    # The identifier registry (types, guards, rules); the packaged one by default.
    registry: str | None = None
    # The identity graph's connected components run in memory (scipy) up to this many edges,
    # distributed (Spark) beyond: ten million string edges take a few GiB on the driver.
    max_in_memory_edges: int = Field(default=10_000_000, ge=0)
    # Daily runs resolve only the day's delta (jobs/identity/incremental.py); every this many
    # days, and whenever the registry or the operators' controls change, a run resolves all of
    # silver (0: every run).
    full_every_days: int = Field(default=7, ge=0)


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_file()
        if not path.exists():
            return {}
        data = load_yaml(path) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings at the top level")
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDP_", env_nested_delimiter="__", extra="forbid")

    lake_root: str = "var/lake"
    var_dir: str = "var"
    # Where exports land before ingestion: {landing_root}/{source}/{dataset}/dt=YYYY-MM-DD/
    landing_root: str = "var/landing"
    exports_dir: str = "var/exports"
    # Great Expectations suites, <layer>.<dataset>.json
    expectations_dir: str = "expectations"
    timezone: str = "Asia/Shanghai"
    spark: SparkSettings = SparkSettings()
    kafka: KafkaSettings = KafkaSettings()
    airflow: AirflowSettings = AirflowSettings()
    dbt: DbtSettings = DbtSettings()
    stream: StreamSettings = StreamSettings()
    youzan: YouzanSettings = YouzanSettings()
    quality: QualitySettings = QualitySettings()
    ingest: IngestSettings = IngestSettings()
    silver: SilverSettings = SilverSettings()
    identity: IdentitySettings = IdentitySettings()
    # Secrets: environment only (CDP_PII_HMAC_KEY, or CDP_PII_HMAC_KEY_FILE naming a file outside
    # the repo). Never set in cdp.yaml.
    pii_hmac_key: SecretStr | None = None
    pii_hmac_key_file: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def model_post_init(self, __context: Any) -> None:
        if config_file().exists():
            raw = load_yaml(config_file()) or {}
            if {"pii_hmac_key", "pii_hmac_key_file"} & set(raw):
                raise ValueError(
                    f"{config_file()}: pii_hmac_key must come from the environment "
                    "(CDP_PII_HMAC_KEY), never from the settings file"
                )
            if "client_secret" in (raw.get("youzan") or {}):
                raise ValueError(
                    f"{config_file()}: youzan.client_secret must come from the environment "
                    "(CDP_YOUZAN__CLIENT_SECRET), never from the settings file"
                )
        self.lake_root = resolve_path(self.lake_root)
        self.var_dir = resolve_path(self.var_dir)
        self.landing_root = resolve_path(self.landing_root)
        self.exports_dir = resolve_path(self.exports_dir)
        self.expectations_dir = resolve_path(self.expectations_dir)
        self.spark.jars_dir = resolve_path(self.spark.jars_dir)
        self.kafka.broker_jars_dir = resolve_path(self.kafka.broker_jars_dir)
        self.airflow.home = resolve_path(self.airflow.home)
        self.dbt.project_dir = resolve_path(self.dbt.project_dir)
        self.stream.checkpoint_dir = resolve_path(self.stream.checkpoint_dir)
        self.quality.reports_dir = resolve_path(
            self.quality.reports_dir or str(Path(self.var_dir) / "reports" / "quality")
        )

    def hmac_key(self) -> bytes:
        """The PII tokenization key. Fails loudly: silver must never be written with a weak key."""
        from jobs.common.errors import CdpError

        if self.pii_hmac_key is not None:
            key = self.pii_hmac_key.get_secret_value().encode()
        elif self.pii_hmac_key_file:
            path = Path(self.pii_hmac_key_file)
            if not path.is_file():
                raise CdpError(f"CDP_PII_HMAC_KEY_FILE={path} does not exist")
            key = path.read_bytes().strip()
        else:
            raise CdpError(
                "no PII tokenization key: set CDP_PII_HMAC_KEY (or CDP_PII_HMAC_KEY_FILE) "
                "from your secret store; `make demo` generates a local one in var/secrets/"
            )
        if len(key) < 32:
            raise CdpError("the PII tokenization key must be at least 32 bytes")
        return key

    @property
    def is_local_lake(self) -> bool:
        return not _is_uri(self.lake_root) or self.lake_root.startswith("file:")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process. Tests call `get_settings.cache_clear()` after changing env."""
    return Settings()


def ensure_local_key(settings: Settings) -> None:
    """For the embedded demo only: a random PII key in var/secrets (git-ignored, mode 600).

    Production sets CDP_PII_HMAC_KEY from its secret store; the repo never holds a key.
    """
    if os.environ.get("CDP_PII_HMAC_KEY") or os.environ.get("CDP_PII_HMAC_KEY_FILE"):
        return
    path = Path(settings.var_dir) / "secrets" / "pii_hmac.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    os.environ["CDP_PII_HMAC_KEY_FILE"] = str(path)
    get_settings.cache_clear()
