"""The landing area: where platform exports wait to be ingested, on disk or in object storage.

`landing_root` is a local folder (the embedded default) or a URI that Arrow's file systems
understand: ``s3://bucket/landing`` (credentials and region from the usual AWS environment
variables; ``?endpoint_override=host:port&scheme=http`` for MinIO or another S3-compatible
store), ``gs://...``, ``hdfs://...`` or ``file:///...``. Layout in both cases:
``{landing_root}/{source}/{dataset}/dt=YYYY-MM-DD/*.{format}``.

A `LandingFile` offers what ingestion needs of a `pathlib.Path` (`name`, `read_bytes`), so the
ingest code and `cdp import` (which passes plain paths) share one path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.common.settings import Settings

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from jobs.ingest.spec import SourceSpec


@dataclass(frozen=True, eq=False)
class LandingFile:
    uri: str
    path: str  # within the file system
    fs: pafs.FileSystem

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LandingFile) and self.uri == other.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.readall()

    def __lt__(self, other: LandingFile) -> bool:
        return self.uri < other.uri


def _is_uri(root: str) -> bool:
    return "://" in root


def day_folder(spec: SourceSpec, logical_date: date, settings: Settings) -> str:
    """The day's landing folder of a dataset, as a local path or a URI."""
    return f"{settings.landing_root.rstrip('/')}/{spec.source}/{spec.dataset}/dt={logical_date}"


def list_files(
    spec: SourceSpec, logical_date: date, settings: Settings
) -> list[Path | LandingFile]:
    """The day's landing files of a dataset (`*.{format}`), sorted; none if the folder is absent."""
    folder = day_folder(spec, logical_date, settings)
    if not _is_uri(settings.landing_root):
        local = Path(folder)
        if not local.is_dir():
            return []
        return sorted(p for p in local.glob(f"*.{spec.format}") if p.is_file())
    import pyarrow.fs as pafs

    fs, base = pafs.FileSystem.from_uri(folder)
    scheme = folder.split("://", 1)[0]
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    found = [
        LandingFile(uri=f"{scheme}://{info.path}", path=info.path, fs=fs)
        for info in infos
        if info.type == pafs.FileType.File and info.path.endswith(f".{spec.format}")
    ]
    return sorted(found)
