"""Result tables and run records, written the same way by every paper package.

A :class:`Table` is the data of one paper table: a name (file stem), a title, column headers and
rows whose first cell is the row label. ``write_tables`` renders each table as GitHub Markdown
(``<name>.md``) and CSV (``<name>.csv``) and stores all of them, with full-precision numbers, in one
``tables.json`` that ``benchmarks`` compares against the expected values in CI.

A cell the pipeline did not compute is the string ``"n/a: <reason>"`` (see :func:`na` and
:func:`cell_or_na`); NaN, infinity and ``None`` are rejected, so a missing number can never be
mistaken for a computed one.

``write_run_record`` writes ``run.json``: the command line, the configuration, library versions,
platform, start time and git commit, so every results folder says how it was made. A run stopped
(SIGTERM) and resumed from its ``last.pt`` spans several processes: each pipeline calls
``record_process_start`` first, and ``run.json`` then also gives the wall time of all of them.
"""
from __future__ import annotations

import atexit
import csv
import dataclasses
import datetime as _datetime
import enum
import json
import math
import numbers
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path, PurePath
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = [
    "NA_PREFIX",
    "Table",
    "cell_or_na",
    "na",
    "percent",
    "read_tables",
    "record_process_start",
    "wall_time_text",
    "write_run_record",
    "write_tables",
]

#: Every cell that was not computed starts with this prefix, followed by the reason.
NA_PREFIX = "n/a: "
TABLES_JSON = "tables.json"
RUN_JSON = "run.json"
#: Beside ``run.json``: one entry per process that worked on the results folder (start, end).
PROCESSES_JSON = "run_processes.json"
DEFAULT_FLOAT_FORMAT = ".4f"

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

Cell = int | float | str
FloatFormat = str | Callable[[float], str]


def na(reason: str) -> str:
    """The cell for a value the pipeline did not compute: ``"n/a: <reason>"``."""
    reason = str(reason).strip()
    if not reason:
        raise ValueError("na() needs a reason, e.g. na('needs LFWA')")
    return NA_PREFIX + reason


def cell_or_na(value: Any, reason: str) -> Cell:
    """``value`` as a table cell, or ``na(reason)`` when it is ``None`` or NaN (a metric that was
    undefined, e.g. AUROC of an attribute without positives in the test split)."""
    if value is None:
        return na(reason)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(float(value)):
        return na(reason)
    return value


def percent(fraction: float, digits: int = 2) -> str:
    """``0.1234 -> "12.34 %"`` for notes and captions (table cells should stay numbers)."""
    return f"{100.0 * float(fraction):.{digits}f} %"


def _normalise_cell(cell: Any, where: str) -> Cell:
    """Python int/float/str from numbers, numpy scalars and strings; reject everything else."""
    if isinstance(cell, str):
        if cell.startswith("n/a") and not (cell.startswith(NA_PREFIX) and cell[len(NA_PREFIX):].strip()):
            raise ValueError(f"{where}: an n/a cell must read 'n/a: <reason>', got {cell!r}")
        return cell
    if isinstance(cell, bool) or cell is None:
        raise TypeError(f"{where}: cell must be a number or a string, got {cell!r}; "
                        f"use common.tables.cell_or_na(value, reason) for missing values")
    if isinstance(cell, numbers.Integral):
        return int(cell)
    if isinstance(cell, numbers.Real):
        value = float(cell)
        if not math.isfinite(value):
            raise ValueError(f"{where}: cell is {value}; a table holds finite numbers or "
                             f"'n/a: <reason>' strings (see common.tables.cell_or_na)")
        return value
    raise TypeError(f"{where}: cell must be a number or a string, got {type(cell).__name__} {cell!r}")


@dataclasses.dataclass
class Table:
    """One results table.

    Attributes:
        name: file stem (``<name>.md``, ``<name>.csv``) and key in ``tables.json``; letters, digits,
            ``_``, ``-`` and ``.`` only.
        title: caption, e.g. ``"Table 2: CelebA attribute error (%), ours vs the paper"``.
        columns: header of every column, the first one labels the rows.
        rows: lists of cells, ``len(row) == len(columns)``; first cell = row label. A cell is a
            finite number or a string; uncomputed cells are ``"n/a: <reason>"``.
        notes: sentences printed under the table (scale, deviations, sources of paper numbers).
        float_format: format spec (``".2f"``) or callable for floats in the Markdown rendering of
            this table; ``None`` uses the ``write_tables`` default. CSV and JSON keep full precision.
    """

    name: str
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    notes: Sequence[str] = ()
    float_format: FloatFormat | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_PATTERN.match(self.name):
            raise ValueError(f"table name {self.name!r} must match {_NAME_PATTERN.pattern} "
                             f"(it becomes a file name)")
        self.columns = [str(column) for column in self.columns]
        if not self.columns:
            raise ValueError(f"table {self.name!r}: no columns")
        if isinstance(self.notes, str):
            self.notes = (self.notes,)
        self.notes = tuple(str(note) for note in self.notes)
        rows = []
        for row_index, row in enumerate(self.rows):
            if isinstance(row, (str, bytes)) or not isinstance(row, Iterable):
                raise TypeError(f"table {self.name!r} row {row_index}: a row is a list of cells, "
                                f"got {type(row).__name__}")
            row = list(row)
            if len(row) != len(self.columns):
                label = row[0] if row else "<empty>"
                raise ValueError(
                    f"table {self.name!r} row {row_index} ({label!r}): {len(row)} cells but "
                    f"{len(self.columns)} columns {self.columns}")
            rows.append([
                _normalise_cell(cell, f"table {self.name!r} row {row_index} "
                                      f"column {self.columns[column_index]!r}")
                for column_index, cell in enumerate(row)])
        self.rows = rows

    def to_json(self) -> dict[str, Any]:
        """``{title, columns, rows, notes}`` as stored in ``tables.json``."""
        return {"title": self.title, "columns": list(self.columns),
                "rows": [list(row) for row in self.rows], "notes": list(self.notes)}

    @classmethod
    def from_json(cls, name: str, record: Mapping[str, Any]) -> "Table":
        return cls(name=name, title=record["title"], columns=record["columns"],
                   rows=record["rows"], notes=tuple(record.get("notes", ())))

    def to_markdown(self, float_format: FloatFormat = DEFAULT_FLOAT_FORMAT) -> str:
        """GitHub Markdown: title line, the table (numeric columns right-aligned), then notes."""
        float_format = self.float_format if self.float_format is not None else float_format
        numeric = [any(isinstance(row[i], (int, float)) for row in self.rows) and i > 0
                   for i in range(len(self.columns))]
        lines = [f"**{self.title}**", "",
                 "| " + " | ".join(_escape_markdown(c) for c in self.columns) + " |",
                 "|" + "|".join("---:" if is_numeric else "---" for is_numeric in numeric) + "|"]
        for row in self.rows:
            lines.append("| " + " | ".join(_escape_markdown(_format_cell(cell, float_format))
                                           for cell in row) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"


def _format_cell(cell: Cell, float_format: FloatFormat) -> str:
    if isinstance(cell, float):
        return float_format(cell) if callable(float_format) else format(cell, float_format)
    return str(cell)


def _escape_markdown(text: str) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def write_tables(tables: Iterable[Table], out_dir: str | os.PathLike,
                 float_format: FloatFormat = DEFAULT_FLOAT_FORMAT, append: bool = False) -> list[Path]:
    """Write ``<name>.md`` and ``<name>.csv`` for every table and ``tables.json`` holding all of them.

    Args:
        tables: the tables; names must be unique.
        out_dir: created if missing.
        float_format: format spec or callable for floats in Markdown (a table's own
            ``float_format`` wins). CSV and ``tables.json`` keep full precision (``repr``).
        append: keep the tables already in ``out_dir/tables.json`` that are not given here
            (for pipelines that write their tables in stages); default replaces the file.

    Returns:
        The paths written, ``tables.json`` last.
    """
    tables = list(tables)
    for table in tables:
        if not isinstance(table, Table):
            raise TypeError(f"write_tables expects common.tables.Table objects, got {type(table).__name__}")
    names = [table.name for table in tables]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate table names: {duplicates}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for table in tables:
        markdown_path = out_dir / f"{table.name}.md"
        _atomic_write_text(markdown_path, table.to_markdown(float_format))
        csv_path = out_dir / f"{table.name}.csv"
        tmp_path = csv_path.with_name(csv_path.name + ".tmp")
        with open(tmp_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.columns)
            writer.writerows([repr(cell) if isinstance(cell, float) else cell for cell in row]
                             for row in table.rows)
        os.replace(tmp_path, csv_path)
        written += [markdown_path, csv_path]
    records: dict[str, Any] = {}
    json_path = out_dir / TABLES_JSON
    if append and json_path.is_file():
        records.update(json.loads(json_path.read_text(encoding="utf-8")))
    records.update({table.name: table.to_json() for table in tables})
    _atomic_write_text(json_path, json.dumps(records, indent=1, allow_nan=False) + "\n")
    written.append(json_path)
    return written


def read_tables(out_dir: str | os.PathLike) -> dict[str, Table]:
    """The tables stored in ``out_dir/tables.json`` by :func:`write_tables`, by name."""
    json_path = Path(out_dir) / TABLES_JSON
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path}: no tables.json (written by common.tables.write_tables)")
    try:
        records = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path}, line {error.lineno}: invalid JSON ({error.msg})") from error
    return {name: Table.from_json(name, record) for name, record in records.items()}


def _atomic_write_text(path: Path, text: str) -> None:
    tmp_path = path.with_name(path.name + ".tmp")
    tmp_path.write_text(text, encoding="utf-8")
    os.replace(tmp_path, path)


# --------------------------------------------------------------------------- run record


def _to_jsonable(value: Any) -> Any:
    """Dataclasses -> dict, paths -> str, tuples/sets -> lists, numpy scalars/arrays -> Python."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _to_jsonable(getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return _to_jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(key): _to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_to_jsonable(item) for item in items]
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return _to_jsonable(value.tolist())
    if isinstance(value, (_datetime.datetime, _datetime.date)):
        return value.isoformat()
    return repr(value)


def _installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _library_versions() -> dict[str, Any]:
    """Versions of the libraries results depend on. TensorFlow is reported only when this process
    already imported it (importing it here would cost seconds and clash with torch's import order)."""
    import numpy

    versions: dict[str, Any] = {"python": sys.version.split()[0], "numpy": numpy.__version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        versions["torch"] = torch.__version__
        versions["torch_cuda"] = torch.version.cuda
        cuda_available = torch.cuda.is_available()
        versions["cuda_available"] = cuda_available
        if cuda_available:
            versions["cuda_devices"] = [torch.cuda.get_device_name(i)
                                        for i in range(torch.cuda.device_count())]
    else:
        versions["torch"] = _installed_version("torch")
    for module_name in ("torchvision", "timm", "sklearn", "scipy", "cv2"):
        module = sys.modules.get(module_name)
        if module is not None:
            versions[module_name] = getattr(module, "__version__", None)
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        versions["tensorflow"] = getattr(tensorflow, "__version__", None)
    return versions


def _git_state(repo_dir: Path) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the checkout holding this code, or ``None`` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=repo_dir, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(),
            "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


#: The checkout's state when this process imported ``common.tables``, before any training: the code a
#: run executes is what it loaded then, even if the checkout changes while it runs.
_GIT_AT_PROCESS_START = _git_state(Path(__file__).resolve().parent.parent)


def _read_processes(path: Path) -> list[dict[str, Any]]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a process list written by common.tables ({error})") from error
    if not isinstance(entries, list) or not all(isinstance(entry, dict) and "start" in entry for entry in entries):
        raise ValueError(f"{path}: not a process list written by common.tables")
    return entries


#: ``(ledger path, start)`` of the entries this process opened, so ``write_run_record`` knows its own.
_OPEN_PROCESS_ENTRIES: list[tuple[Path, str]] = []


def _close_process_entry(path: Path, start: str) -> None:
    """atexit: write this process's end time into its entry (a list removed meanwhile, with its folder,
    reads as empty and is left alone)."""
    try:
        entries = _read_processes(path)
    except ValueError:
        return
    for entry in entries:
        if entry["start"] == start and entry.get("pid") == os.getpid() and entry.get("end") is None:
            entry["end"] = _datetime.datetime.now(_datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
            _atomic_write_text(path, json.dumps(entries, indent=1) + "\n")
            return


def record_process_start(out_dir: str | os.PathLike, start_time: float | None = None, fresh: bool = False) -> Path:
    """Add this process to ``out_dir/run_processes.json`` (created with ``out_dir``) and write its end
    time there when the interpreter exits (normally, by an exception, or after a SIGTERM that the
    training loop turned into a checkpoint and a clean exit; a SIGKILL leaves the end empty).

    ``write_run_record`` sums the entries into ``wall_seconds_all_processes``: the wall time of a
    run that was stopped and resumed, which ``wall_seconds`` (this process only) understates.
    ``fresh``: the run starts over (``--restart``), so earlier entries are dropped. Returns the
    path of the list."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PROCESSES_JSON
    moment = _datetime.datetime.fromtimestamp(time.time() if start_time is None else float(start_time),
                                              _datetime.timezone.utc).astimezone()
    start = moment.isoformat(timespec="seconds")
    entries = [] if fresh else _read_processes(path)
    entries.append({"pid": os.getpid(), "start": start, "end": None})
    _atomic_write_text(path, json.dumps(entries, indent=1) + "\n")
    _OPEN_PROCESS_ENTRIES.append((path, start))
    atexit.register(_close_process_entry, path, start)
    return path


def _processes_summary(out_dir: Path, now: _datetime.datetime) -> dict[str, Any] | None:
    """``run.json``'s account of every process in ``run_processes.json`` (``None`` without one)."""
    path = out_dir / PROCESSES_JSON
    entries = _read_processes(path)
    if not entries:
        return None
    own = {start for ledger, start in _OPEN_PROCESS_ENTRIES if ledger.resolve() == path.resolve()}
    total, unfinished = 0.0, 0
    for entry in entries:
        start = _datetime.datetime.fromisoformat(entry["start"])
        if entry.get("end") is not None:
            total += (_datetime.datetime.fromisoformat(entry["end"]) - start).total_seconds()
        elif entry["start"] in own and entry.get("pid") == os.getpid():
            total += (now - start).total_seconds()
        else:
            unfinished += 1
    return {"processes": len(entries), "processes_without_end": unfinished,
            "wall_seconds_all_processes": round(total, 1)}


def wall_time_text(run: Mapping[str, Any]) -> str:
    """How long the run of a ``run.json`` took, for model cards: "91 min wall over 3 processes",
    "13 min wall" (one process), or, for a folder without ``run_processes.json`` (written before it
    existed), "13 min wall (the process that finished the run)"."""
    processes = run.get("processes")
    if processes is None:
        return f"{run['wall_seconds'] / 60:.0f} min wall (the process that finished the run)"
    minutes = processes["wall_seconds_all_processes"] / 60
    if processes["processes"] == 1:
        return f"{minutes:.0f} min wall"
    text = f"{minutes:.0f} min wall over {processes['processes']} processes (stopped and resumed)"
    if processes["processes_without_end"]:
        text = (f"at least {text}; {processes['processes_without_end']} of them ended without recording "
                "when (killed)")
    return text


def write_run_record(out_dir: str | os.PathLike, argv: Sequence[str] | None, config: Any,
                     start_time: _datetime.datetime | float | None = None,
                     extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir/run.json``: how this results folder was produced.

    Args:
        out_dir: created if missing.
        argv: the command line (``sys.argv`` when ``None``).
        config: a dataclass (nested dataclasses fine), a mapping, or ``None``.
        start_time: when the run began (datetime or ``time.time()``); defaults to now. With it the
            record also holds ``wall_seconds`` up to the moment of writing.
        extra: further JSON-able facts (dataset sizes, scale, number of skipped images ...).

    ``git`` is the checkout's commit and dirtiness when the process started (``common.tables`` was
    imported); ``git_when_written`` is added when the checkout changed while the run was going.
    ``processes`` (when ``record_process_start`` was called for ``out_dir``) counts the processes
    that worked on the folder and sums their wall time (``wall_time_text``).

    Returns:
        The path of ``run.json``.
    """
    now = _datetime.datetime.now(_datetime.timezone.utc).astimezone()
    if start_time is None:
        start = now
    elif isinstance(start_time, _datetime.datetime):
        start = start_time if start_time.tzinfo else start_time.astimezone()
    else:
        start = _datetime.datetime.fromtimestamp(float(start_time), _datetime.timezone.utc).astimezone()
    argv = list(sys.argv if argv is None else argv)
    record: dict[str, Any] = {
        "command": shlex.join(str(arg) for arg in argv),
        "argv": [str(arg) for arg in argv],
        "cwd": os.getcwd(),
        "start_time": start.isoformat(timespec="seconds"),
        "written_time": now.isoformat(timespec="seconds"),
        "wall_seconds": round((now - start).total_seconds(), 3),
        "config": _to_jsonable(config),
        "versions": _library_versions(),
        "platform": {"system": platform.platform(), "machine": platform.machine(),
                     "processor": platform.processor(), "cpu_count": os.cpu_count()},
        "git": _GIT_AT_PROCESS_START,
    }
    at_write = _git_state(Path(__file__).resolve().parent.parent)
    if at_write != _GIT_AT_PROCESS_START:
        record["git_when_written"] = at_write  # the checkout changed while the run was going
    if extra:
        record["extra"] = _to_jsonable(dict(extra))
    out_dir = Path(out_dir)
    processes = _processes_summary(out_dir, now)
    if processes is not None:
        record["processes"] = processes
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_JSON
    _atomic_write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")
    return path
