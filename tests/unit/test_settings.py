import pytest

from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings


def test_environment_overrides_yaml_and_nested_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("CDP_LAKE_ROOT", "s3a://brand-lake/cdp")
    monkeypatch.setenv("CDP_SPARK__MASTER", "spark://master:7077")
    monkeypatch.setenv("CDP_VAR_DIR", str(tmp_path))
    s = Settings()
    assert s.lake_root == "s3a://brand-lake/cdp"
    assert not s.is_local_lake
    assert s.spark.master == "spark://master:7077"
    assert s.var_dir == str(tmp_path)
    # values not overridden come from cdp.yaml
    assert s.kafka.events_topic == "cdp.events"


def test_relative_paths_resolve_against_the_config_file(monkeypatch, tmp_path):
    cfg = tmp_path / "cdp.yaml"
    cfg.write_text("lake_root: data/lake\nspark:\n  shuffle_partitions: 8\n")
    monkeypatch.setenv("CDP_CONFIG", str(cfg))
    monkeypatch.delenv("CDP_LAKE_ROOT", raising=False)
    s = Settings()
    assert s.lake_root == str(tmp_path / "data" / "lake")
    assert s.spark.shuffle_partitions == 8


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("pii_hmac_key: oops\n", "environment"),  # secrets only from the environment
        ("pii_hmac_key_file: /tmp/k\n", "environment"),
        ("lake_rot: typo\n", "lake_rot"),  # a misspelt setting is an error, not ignored
    ],
)
def test_bad_settings_file_is_refused(monkeypatch, tmp_path, content, message):
    cfg = tmp_path / "cdp.yaml"
    cfg.write_text(content)
    monkeypatch.setenv("CDP_CONFIG", str(cfg))
    with pytest.raises(ValueError, match=message):
        Settings()


def test_hmac_key_from_env_file_and_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("CDP_PII_HMAC_KEY", raising=False)
    with pytest.raises(CdpError, match="CDP_PII_HMAC_KEY"):
        Settings().hmac_key()
    key_file = tmp_path / "k"
    key_file.write_text("f" * 64 + "\n")
    monkeypatch.setenv("CDP_PII_HMAC_KEY_FILE", str(key_file))
    assert Settings().hmac_key() == b"f" * 64
    monkeypatch.setenv("CDP_PII_HMAC_KEY", "short")
    with pytest.raises(CdpError, match="32 bytes"):
        Settings().hmac_key()


def test_get_settings_is_cached_until_cleared(monkeypatch):
    get_settings.cache_clear()
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("CDP_TIMEZONE", "UTC")
    get_settings.cache_clear()
    assert get_settings().timezone == "UTC"
    get_settings.cache_clear()
