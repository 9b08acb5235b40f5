"""Which files a run reads: confined to the data directory, every entry of a drop accounted for.

Pure (no Airflow). The DAG resolves its ``input_path`` param and the daily drop folder here,
before anything is opened, so a user who may trigger the DAG cannot make the worker read a
file outside the data directory (``/proc/self/environ``, ``/etc/passwd``, ``.env``):

* ``confine`` -- a user-given path, relative to the data directory or absolute inside it,
  resolved with symlinks followed; ``..`` components, NUL bytes, absolute paths outside the
  data directory and symlinks leading out of it are refused.
* ``drop_dir`` -- the daily drop folder ``<data_dir>/incoming/<YYYY-MM-DD>``; a drop is
  complete when its ``_SUCCESS`` marker exists (``DROP_COMPLETE_MARKER``).
* ``resolve_input_files`` -- a one-shot file, or every ``*.csv`` / ``*.csv.gz`` (any case) of a
  drop folder, sorted. An entry that would not be read (another extension, a sub-folder, a
  socket) fails the run naming it: nothing is skipped without a word. ``_SUCCESS`` and
  dot-entries (``.part`` uploads, ``.DS_Store``) are the only entries ignored.

Every error is an ``InputError`` that names the path and the rule broken, never file content.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

DROP_COMPLETE_MARKER = "_SUCCESS"
INCOMING_DIR_NAME = "incoming"
# Names a run reads (compared case-insensitively): plain or gzip-compressed CSV.
INPUT_SUFFIXES = (".csv", ".csv.gz")

_RUN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class InputError(ValueError):
    """The run's input is not acceptable: the message names the path and the rule broken."""


def _shown(text: str) -> str:
    """A user-given path as shown in messages: repr (control characters escaped), bounded."""
    return repr(text if len(text) <= 300 else text[:300] + "...")


def _root(data_dir: Path) -> Path:
    root = Path(data_dir).resolve()
    if not root.is_dir():
        raise InputError(f"data directory {str(root)!r} does not exist or is not a folder")
    return root


def confine(path_text: str, data_dir: Path) -> Path:
    """Resolve ``path_text`` inside ``data_dir`` (symlinks followed); InputError otherwise.

    Relative paths are relative to ``data_dir``; an absolute path is allowed only when it lies
    inside it. Refused: an empty path, a NUL byte, any ``..`` component (even one that would
    stay inside), an absolute path outside ``data_dir`` and a symlink (of the path or of any
    folder on the way) leading outside. The path need not exist yet (a sensor may wait for
    it). Returns the resolved absolute path.
    """
    text = os.fspath(path_text)
    if not isinstance(text, str):
        raise InputError(f"input path {text!r} is not text")
    if not text.strip():
        raise InputError("input path is empty")
    if "\x00" in text:
        raise InputError(f"input path {_shown(text)} contains a NUL byte")
    root = _root(data_dir)
    given = Path(text)
    if ".." in given.parts:
        raise InputError(f"input path {_shown(text)} contains '..': paths must stay inside {str(root)!r}")
    candidate = given if given.is_absolute() else root / given
    # Lexically outside (absolute path elsewhere, e.g. /proc/self/environ)? Compare against
    # both the data directory as given and resolved, so /work/data/x works when /work/data is
    # itself a symlink.
    lexical_roots = {root, Path(os.path.abspath(data_dir))}
    if not any(candidate.is_relative_to(r) for r in lexical_roots):
        raise InputError(f"input path {_shown(text)} is outside the data directory {str(root)!r}")
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as err:  # symlink loop
        raise InputError(f"input path {_shown(text)} cannot be resolved: {type(err).__name__}") from None
    if not resolved.is_relative_to(root):
        raise InputError(
            f"input path {_shown(text)} leads outside the data directory {str(root)!r} through a symbolic link"
        )
    return resolved


def drop_dir(data_dir: Path, run_date: str) -> Path:
    """The daily drop folder ``<data_dir>/incoming/<run_date>`` (run_date ``YYYY-MM-DD``)."""
    text = str(run_date)
    if not _RUN_DATE.fullmatch(text):
        raise InputError(f"run date {_shown(text)} is not YYYY-MM-DD")
    return Path(data_dir) / INCOMING_DIR_NAME / text


def is_input_name(name: str) -> bool:
    """True for the file names a run reads: ``*.csv`` or ``*.csv.gz``, any case."""
    return name.lower().endswith(INPUT_SUFFIXES)


def _kind(path: Path) -> str:
    """What an unreadable entry is, for the error message."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "broken symbolic link" if path.is_symlink() else "unreadable entry"
    if stat.S_ISDIR(mode):
        return "sub-folder"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return "not a .csv or .csv.gz file"


def resolve_input_files(target: Path, data_dir: Path) -> list[Path]:
    """The files a run reads: ``target`` itself (one-shot file) or the CSVs of a drop folder.

    A folder yields its ``*.csv`` and ``*.csv.gz`` files (any case), sorted by name, ignoring
    ``_SUCCESS`` and dot-entries. Any other entry -- another extension, a sub-folder, a FIFO,
    a broken link -- raises InputError naming each one, as does a folder with no CSV, a
    missing target, or a path (target or file) that leaves the data directory. Every returned
    path has been through ``confine`` and is resolved (symlinks followed).
    """
    resolved = confine(os.fspath(target), data_dir)
    root = _root(data_dir)
    if not resolved.exists():
        raise InputError(f"input {str(resolved)!r} does not exist")
    if resolved.is_file():
        if not is_input_name(resolved.name):
            raise InputError(f"input {str(resolved)!r} is not a .csv or .csv.gz file")
        return [resolved]
    if not resolved.is_dir():
        raise InputError(f"input {str(resolved)!r} is neither a regular file nor a folder")

    files: list[Path] = []
    unread: list[str] = []
    for name in sorted(os.listdir(resolved)):
        entry = resolved / name
        if name.startswith(".") or (name == DROP_COMPLETE_MARKER and entry.is_file()):
            continue
        if is_input_name(name) and entry.is_file():
            try:
                files.append(confine(str(entry), root))
            except InputError as err:
                unread.append(f"{name} ({err})")
            continue
        unread.append(f"{name}{'/' if entry.is_dir() else ''} ({_kind(entry)})")
    if unread:
        raise InputError(
            f"drop folder {str(resolved)!r} has {len(unread)} entr{'y' if len(unread) == 1 else 'ies'} "
            f"that would not be read: {'; '.join(unread)}. A drop holds only *.csv / *.csv.gz files "
            f"(and the {DROP_COMPLETE_MARKER} marker); move the rest out and rerun"
        )
    if not files:
        raise InputError(f"drop folder {str(resolved)!r} has no .csv or .csv.gz file")
    return files
