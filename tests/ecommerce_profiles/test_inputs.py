"""Run inputs: confined to the data directory, every entry of a drop folder accounted for."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from ecommerce_profiles.core.inputs import (
    DROP_COMPLETE_MARKER,
    InputError,
    confine,
    drop_dir,
    resolve_input_files,
)
from ecommerce_profiles.core.schemas import EVENT_COLUMNS
from ecommerce_profiles.core.validation import validate_files

HEADER = ",".join(EVENT_COLUMNS)
GOOD_ROW = "2020-09-24 11:57:06 UTC,view,1996170,2144415922528452715,electronics.telephone,,31.90,1515915625519388267,LJuJVLEjPT"
SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI-planted-secret"


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file next to the data directory, holding a secret (like .env beside data/)."""
    path = tmp_path / "outside.csv"
    path.write_text(f"{HEADER}\n{GOOD_ROW}\n# {SECRET}\n")
    return path


def _drop(data: Path, day: str = "2020-10-01", *, complete: bool = True, files=("events.csv",)) -> Path:
    folder = drop_dir(data, day)
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text(f"{HEADER}\n{GOOD_ROW}\n")
    if complete:
        (folder / DROP_COMPLETE_MARKER).write_text("")
    return folder


# ------------------------------------------------------------------------------------------
# confine
# ------------------------------------------------------------------------------------------
def test_relative_and_absolute_paths_inside_resolve(data):
    (data / "events.csv").write_text(HEADER + "\n")
    assert confine("events.csv", data) == (data / "events.csv").resolve()
    assert confine(str(data / "events.csv"), data) == (data / "events.csv").resolve()
    assert confine("incoming/2020-10-01", data) == (data / "incoming" / "2020-10-01").resolve()  # need not exist yet


@pytest.mark.parametrize("text", ["../outside.csv", "incoming/../../outside.csv", "incoming/../events.csv", ".."])
def test_dot_dot_is_refused_even_when_it_would_stay_inside(data, text):
    with pytest.raises(InputError, match=r"contains '\.\.'") as err:
        confine(text, data)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize("text", ["/etc/passwd", "/proc/self/environ", "/tmp", "/"])
def test_absolute_paths_outside_are_refused(data, text):
    with pytest.raises(InputError, match="outside the data directory") as err:
        confine(text, data)
    assert repr(text) in str(err.value)


def test_absolute_path_of_a_sibling_with_the_same_prefix_is_refused(data, tmp_path):
    sibling = tmp_path / "data-other" / "events.csv"  # "/x/data-other" starts with "/x/data" as text
    sibling.parent.mkdir()
    sibling.write_text(HEADER + "\n")
    with pytest.raises(InputError, match="outside the data directory"):
        confine(str(sibling), data)


def test_symlinked_file_or_folder_leading_outside_is_refused(data, outside):
    (data / "innocent.csv").symlink_to(outside)
    (data / "linked_dir").symlink_to(outside.parent)
    (data / "environ.csv").symlink_to("/proc/self/environ")
    for text in ("innocent.csv", "linked_dir/outside.csv", str(data / "innocent.csv"), "environ.csv"):
        with pytest.raises(InputError, match="through a symbolic link"):
            confine(text, data)


def test_symlink_that_stays_inside_is_followed(data):
    (data / "real.csv").write_text(HEADER + "\n")
    (data / "alias.csv").symlink_to(data / "real.csv")
    assert confine("alias.csv", data) == (data / "real.csv").resolve()


def test_data_directory_reached_through_a_symlink(tmp_path, data):
    (data / "events.csv").write_text(HEADER + "\n")
    link = tmp_path / "data-link"
    link.symlink_to(data)
    assert confine(str(link / "events.csv"), link) == (data / "events.csv").resolve()
    assert confine("events.csv", link) == (data / "events.csv").resolve()


@pytest.mark.parametrize("text, message", [("", "empty"), ("  ", "empty"), ("a\x00b.csv", "NUL byte")])
def test_empty_path_and_nul_byte_are_refused(data, text, message):
    with pytest.raises(InputError, match=message):
        confine(text, data)


def test_symlink_loop_is_an_input_error(data):
    (data / "a").symlink_to(data / "b")
    (data / "b").symlink_to(data / "a")
    with pytest.raises(InputError):
        confine("a", data)


def test_missing_data_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        confine("x.csv", tmp_path / "nope")


# ------------------------------------------------------------------------------------------
# drop_dir
# ------------------------------------------------------------------------------------------
def test_drop_dir_is_incoming_run_date(data):
    assert drop_dir(data, "2020-10-01") == data / "incoming" / "2020-10-01"


@pytest.mark.parametrize("run_date", ["../../etc", "2020-10-01/../..", "2020-1-1", "", "2020-10-01T00:00:00"])
def test_drop_dir_refuses_anything_but_a_date(data, run_date):
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        drop_dir(data, run_date)


# ------------------------------------------------------------------------------------------
# resolve_input_files
# ------------------------------------------------------------------------------------------
def test_one_shot_file(data):
    path = data / "electronics.csv"
    path.write_text(HEADER + "\n")
    assert resolve_input_files(path, data) == [path.resolve()]
    assert resolve_input_files(Path("electronics.csv"), data) == [path.resolve()]


def test_one_shot_file_must_be_csv_and_exist(data):
    (data / "events.txt").write_text(HEADER + "\n")
    with pytest.raises(InputError, match=r"not a \.csv or \.csv\.gz file"):
        resolve_input_files(data / "events.txt", data)
    with pytest.raises(InputError, match="does not exist"):
        resolve_input_files(data / "missing.csv", data)


def test_one_shot_file_outside_is_refused(data, outside):
    with pytest.raises(InputError, match="outside the data directory"):
        resolve_input_files(outside, data)


def test_drop_reads_csv_any_case_and_gz_sorted_ignoring_marker_and_dotfiles(data):
    folder = _drop(data, files=("b.csv", "A.CSV", "c.Csv", "d.csv.gz", "E.CSV.GZ"))
    (folder / ".b.csv.part").write_text("partial upload")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    files = resolve_input_files(folder, data)
    assert [f.name for f in files] == ["A.CSV", "E.CSV.GZ", "b.csv", "c.Csv", "d.csv.gz"]
    assert all(f.is_absolute() and f.parent == folder.resolve() for f in files)


@pytest.mark.parametrize("extra", ["notes.txt", "events.parquet", "events.csv.bz2", "events.tsv", "_SUCCESS.txt"])
def test_an_unread_file_in_a_drop_fails_naming_it(data, extra):
    folder = _drop(data)
    (folder / extra).write_text(SECRET)
    with pytest.raises(InputError) as err:
        resolve_input_files(folder, data)
    message = str(err.value)
    assert extra in message and "would not be read" in message and str(folder) in message
    assert SECRET not in message and "events.csv (" not in message  # names only the unread entry


def test_every_unread_entry_is_named_at_once(data):
    folder = _drop(data)
    (folder / "notes.txt").write_text("x")
    (folder / "late").mkdir()
    (folder / "late" / "events.csv").write_text(HEADER + "\n")
    (folder / "part-0.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputError) as err:
        resolve_input_files(folder, data)
    message = str(err.value)
    assert "3 entries" in message
    assert "notes.txt (not a .csv or .csv.gz file)" in message
    assert "late/ (sub-folder)" in message
    assert "part-0.parquet (not a .csv or .csv.gz file)" in message


def test_a_csv_named_folder_and_a_fifo_are_unread_entries(data):
    folder = _drop(data)
    (folder / "more.csv").mkdir()
    os.mkfifo(folder / "pipe.csv")
    with pytest.raises(InputError) as err:
        resolve_input_files(folder, data)
    assert "more.csv/ (sub-folder)" in str(err.value) and "pipe.csv (not a regular file)" in str(err.value)


def test_a_symlinked_drop_file_pointing_outside_is_refused(data, outside):
    folder = _drop(data)
    (folder / "extra.csv").symlink_to(outside)
    (folder / "environ.csv").symlink_to("/proc/self/environ")
    with pytest.raises(InputError) as err:
        resolve_input_files(folder, data)
    message = str(err.value)
    assert "extra.csv (" in message and "environ.csv (" in message and "through a symbolic link" in message
    assert SECRET not in message


def test_a_broken_symlink_in_a_drop_is_named(data):
    folder = _drop(data)
    (folder / "gone.txt").symlink_to(data / "nothing-here")
    with pytest.raises(InputError, match=r"gone\.txt \(broken symbolic link\)"):
        resolve_input_files(folder, data)


def test_a_symlinked_drop_file_inside_the_data_directory_is_read(data):
    folder = _drop(data)
    archive = data / "archive.csv"
    archive.write_text(HEADER + "\n")
    (folder / "z.csv").symlink_to(archive)
    assert resolve_input_files(folder, data) == [(folder / "events.csv").resolve(), archive.resolve()]


def test_a_drop_folder_that_is_a_symlink_outside_is_refused(data, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "events.csv").write_text(HEADER + "\n")
    (data / "incoming").mkdir()
    drop_dir(data, "2020-10-02").symlink_to(elsewhere)
    with pytest.raises(InputError, match="through a symbolic link"):
        resolve_input_files(drop_dir(data, "2020-10-02"), data)


@pytest.mark.parametrize("names", [(), (DROP_COMPLETE_MARKER,), (".hidden.csv",)])
def test_a_drop_without_csv_fails(data, names):
    folder = drop_dir(data, "2020-10-03")
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("")
    with pytest.raises(InputError, match=r"has no \.csv or \.csv\.gz file"):
        resolve_input_files(folder, data)


def test_a_missing_drop_folder_fails(data):
    with pytest.raises(InputError, match="does not exist"):
        resolve_input_files(drop_dir(data, "2020-10-04"), data)


def test_a_resolved_drop_validates_csv_gz_and_upper_case_csv_together(data, tmp_path):
    folder = _drop(data, files=("a.csv",))
    with gzip.open(folder / "b.csv.gz", "wt") as f:
        f.write(f"{HEADER}\n{GOOD_ROW.replace('11:57:06', '11:57:07')}\n{GOOD_ROW}\n")
    (folder / "C.CSV").write_text(f"{HEADER}\n{GOOD_ROW.replace('11:57:06', '11:57:08')}\n")
    files = resolve_input_files(folder, data)
    result = validate_files(files, tmp_path / "out" / "m.tsv", tmp_path / "out" / "q.csv")
    assert (result.rows_read, result.rows_accepted, result.rejects_by_rule["duplicate_row"]) == (4, 3, 1)
    assert [Path(f).name for f in result.files] == ["C.CSV", "a.csv", "b.csv.gz"]
    assert result.rejects_by_file == {str(f): {} for f in files} | {str(files[2]): {"duplicate_row": 1}}
