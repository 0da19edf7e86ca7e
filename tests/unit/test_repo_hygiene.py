"""Cheap repository rules: notebooks stripped and never imported, no secrets in settings."""

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_notebooks_have_no_outputs():
    notebooks = list((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [], f"{nb.name}: strip outputs (nbstripout)"
                assert cell["execution_count"] is None, nb.name


def test_package_never_imports_notebooks():
    for py in (ROOT / "jobs").rglob("*.py"):
        assert "notebooks" not in py.read_text(), py


def test_settings_file_holds_no_secret():
    settings = yaml.safe_load((ROOT / "cdp.yaml").read_text())
    flat = json.dumps(settings).lower()
    assert "key" not in flat.replace("_key_", "")
    assert "password" not in flat


def test_every_suite_is_named_after_its_file():
    for suite in (ROOT / "expectations").glob("*.json"):
        layer, _dataset = suite.stem.split(".", 1)
        assert layer in {"bronze", "silver", "gold"}
        assert json.loads(suite.read_text())["name"] == suite.stem


def test_compose_services_share_one_image_and_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in (
        "postgres",
        "kafka",
        "spark-master",
        "spark-worker",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-apiserver",
        "stream-triggers",
    ):
        assert name in services, name
    ours = [s for s in services.values() if s.get("image") == "cdp:latest"]
    assert all(s["environment"]["CDP_PII_HMAC_KEY"].startswith("${") for s in ours)
    # cdp_daily's lake-writing steps are never scheduled if their pool doesn't exist
    init = " ".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in init
    assert "airflow pools set cdp_lake_writers 1 " in init
