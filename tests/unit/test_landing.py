"""The landing area as a local folder or a URI (Arrow file systems): the same files either way."""

from __future__ import annotations

from datetime import date

from jobs.common.settings import Settings
from jobs.ingest.landing import LandingFile, list_files
from jobs.ingest.spec import get_spec

DAY = date(2026, 11, 22)


def test_a_uri_landing_lists_and_reads_what_a_folder_does(tmp_path):
    spec = get_spec("tmall.orders")
    folder = tmp_path / "tmall" / "orders" / f"dt={DAY}"
    folder.mkdir(parents=True)
    for name, data in [("b.csv", b"2"), ("a.csv", b"1"), ("notes.txt", b"x")]:
        (folder / name).write_bytes(data)
    (folder / "sub.csv").mkdir()  # a folder named like a file is not a file

    local = list_files(spec, DAY, Settings(landing_root=str(tmp_path)))
    remote = list_files(spec, DAY, Settings(landing_root=f"file://{tmp_path}"))
    assert [p.name for p in local] == ["a.csv", "b.csv"]
    assert [f.name for f in remote] == ["a.csv", "b.csv"]
    assert all(isinstance(f, LandingFile) for f in remote)
    assert remote[0].uri == f"file://{folder}/a.csv"
    assert [f.read_bytes() for f in remote] == [p.read_bytes() for p in local]


def test_a_missing_day_is_no_files_not_an_error(tmp_path):
    spec = get_spec("jd.orders")
    assert list_files(spec, DAY, Settings(landing_root=str(tmp_path))) == []
    assert list_files(spec, DAY, Settings(landing_root=f"file://{tmp_path}")) == []
