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

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.path).type == pafs.FileType.File

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


# Names of files still being written or left by tools, never data: skipped, but still reported.
_PARTIAL = (".tmp", ".part", ".crdownload", ".partial", ".filepart", ".download")


def _matches(name: str, fmt: str) -> bool:
    """Is `name` a finished file of this format? The extension in any case (ORDERS.CSV)."""
    lowered = name.lower()
    return (
        lowered.endswith(f".{fmt}")
        and not name.startswith((".", "~$"))
        and not lowered.endswith(_PARTIAL)
    )


def list_files(
    spec: SourceSpec, logical_date: date, settings: Settings, *, with_ignored: bool = False
):
    """The day's landing files of a dataset (`*.{format}`, any case), sorted; none if the folder
    is absent. With `with_ignored`: (files, names of the other files in the folder), so what
    is not ingested is reported, never silently skipped."""
    folder = day_folder(spec, logical_date, settings)
    names: list[tuple[str, Path | LandingFile]] = []
    if not _is_uri(settings.landing_root):
        local = Path(folder)
        if local.is_dir():
            names = [(p.name, p) for p in local.iterdir() if p.is_file()]
    else:
        import pyarrow.fs as pafs

        fs, base = pafs.FileSystem.from_uri(folder)
        scheme = folder.split("://", 1)[0]
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        names = [
            (info.base_name, LandingFile(uri=f"{scheme}://{info.path}", path=info.path, fs=fs))
            for info in infos
            if info.type == pafs.FileType.File
        ]
    found = sorted((f for name, f in names if _matches(name, spec.format)), key=lambda f: f.name)
    if not with_ignored:
        return found
    ignored = sorted(
        f"{name}: not a .{spec.format} file of {spec.key}"
        if not name.lower().endswith(_PARTIAL)
        else f"{name}: still being written (partial download)"
        for name, _f in names
        if not _matches(name, spec.format)
    )
    return found, ignored


def open_location(location: str) -> Path | LandingFile:
    """A file recorded by its location (a local path or a URI), to read it again."""
    if not _is_uri(location):
        return Path(location)
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(location)
    return LandingFile(uri=location, path=path, fs=fs)
