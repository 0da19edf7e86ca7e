"""The one place a SparkSession is built: Delta Lake and the Kafka connector from local jars.

`make setup` resolves the JVM jars from Maven Central into var/jars/spark (see jvm/spark/pom.xml).
Here Spark is pointed at those files, so nothing is downloaded at run or test time. Jars whose
artifact pyspark already ships (Hadoop, Jackson, Scala, ...) are skipped to keep one copy of each
class on the classpath.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_VERSION_SUFFIX = re.compile(r"-\d[\w.\-]*\.jar$")


def _artifact(jar_name: str) -> str:
    return _VERSION_SUFFIX.sub("", jar_name)


def spark_jars(settings: Settings | None = None) -> list[str]:
    """Jar files to add to Spark: the resolved ones, less the artifacts pyspark already has."""
    import pyspark

    settings = settings or get_settings()
    jars_dir = Path(settings.spark.jars_dir)
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    if not any(j.name.startswith("delta-spark") for j in jars):
        raise CdpError(
            f"no Delta Lake jar in {jars_dir}: run `make setup` to resolve the JVM jars "
            "from Maven Central"
        )
    bundled = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [str(j) for j in jars if _artifact(j.name) not in bundled]


def get_spark(app_name: str = "cdp", settings: Settings | None = None) -> SparkSession:
    """The process's SparkSession (created once, then reused), configured for the lake."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    settings = settings or get_settings()
    # Python workers must run the interpreter that has our packages (the virtualenv's).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if settings.spark.master.startswith("local"):
        # Local mode talks to itself: bind to loopback (and skip Spark's warning about it).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    warehouse = f"{settings.lake_root.rstrip('/')}/_warehouse"
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark.master)
        .config("spark.jars", ",".join(spark_jars(settings)))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.sql.session.timeZone", settings.timezone)
        .config("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))
        .config("spark.driver.memory", settings.spark.driver_memory)
        .config("spark.ui.enabled", str(settings.spark.ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        # Small local tables: the default 50 partitions for Delta log replay is pure overhead.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        .config(
            "spark.sql.streaming.stateStore.providerClass",
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        )
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={settings.var_dir}")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    _quiet_known_warnings(spark)
    return spark


# Loggers whose WARN lines are expected here and say nothing actionable: dbt's session method
# calls getOrCreate() per statement ("Using an existing Spark session"), and native Hadoop
# libraries are absent on a laptop.
_QUIET_LOGGERS = (
    "org.apache.spark.sql.SparkSession",
    "org.apache.spark.sql.classic.SparkSession",
    "org.apache.hadoop.util.NativeCodeLoader",
)


def _quiet_known_warnings(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    level = jvm.org.apache.logging.log4j.Level.ERROR
    for name in _QUIET_LOGGERS:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, level)


# A small input (a demo day, a few thousand rows) runs faster on one shuffle partition without
# adaptive planning or whole-stage code generation: their fixed costs dominate tiny jobs.
SMALL_DATA_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
}


@contextmanager
def small_data(spark: SparkSession, small: bool) -> Iterator[None]:
    """`SMALL_DATA_CONF` on the session while a small input is processed (when `small`); the
    settings are restored after."""
    if not small:
        yield
        return
    before = {k: spark.conf.get(k, None) for k in SMALL_DATA_CONF}
    for k, v in SMALL_DATA_CONF.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def release_caches(spark: SparkSession) -> None:
    """Let go of what a long-lived session keeps of the tables it has read: Delta's cache of
    table logs (each with its snapshot's plans, kept for an hour after the last use) and
    Spark's cached data. A process that reads many lakes in turn (a test run, a notebook going
    through several) calls this between them; a daily task's process ends instead."""
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    spark.catalog.clearCache()
