"""Reading an input dataset: a Parquet file, a directory of files (hive partitions allowed) or a
pyarrow/fsspec URI, checked file by file before any row is read.

The problems found raise the rules of the ``read`` stage
(:data:`fusioncast.validation.rules.RULES`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fusioncast.contract import DataContract
from fusioncast.errors import DataValidationError
from fusioncast.validation.rule import TABLE

#: Files of a dataset directory that are read (any case); other files there are left out.
PARQUET_SUFFIXES = (".parquet", ".parq")
#: Metadata and markers of Parquet writers (``_SUCCESS``, ``_metadata``, ``.crc``): skipped, as
#: pyarrow does.
HIDDEN_PREFIXES = (".", "_")
#: What pyarrow raises on bytes that are not the Parquet it expects (disk errors carry an errno).
_ARROW_ERRORS = (pa.ArrowException, OSError)


@dataclass(frozen=True)
class DatasetFiles:
    """The files an input dataset is read from: one file, or the Parquet files under a directory.

    ``ignored`` holds the other (not hidden) files found under the directory, which are not read.
    """

    filesystem: pafs.FileSystem
    root: str  # the file, or the directory (the base of hive partitions)
    files: tuple[str, ...]
    ignored: tuple[str, ...] = ()

    @property
    def is_directory(self) -> bool:
        return self.files != (self.root,)

    def name(self, path: str) -> str:
        """``path`` relative to the dataset directory (a file dataset: its file name)."""
        return path[len(self.root) :].lstrip("/") if self.is_directory else path.split("/")[-1]


def dataset_files(source: str | Path) -> DatasetFiles:
    """The files of ``source``: a file (whatever its name), or the ``*.parquet``/``*.parq`` files
    under a directory (hive partition folders included, hidden names skipped).

    Raises:
        DataValidationError: ``parquet_files`` when ``source`` does not exist or a directory holds
            no Parquet file.
    """
    path = str(source)
    try:
        if "://" in path:
            filesystem, root = pafs.FileSystem.from_uri(path)
        else:
            filesystem, root = pafs.LocalFileSystem(), str(Path(path).absolute())
        kind = filesystem.get_file_info(root).type
    except _ARROW_ERRORS as error:
        detail = f"cannot open {path}: {_data_problem(error)}"
        raise DataValidationError("parquet_files", TABLE, 1, detail) from None
    if kind == pafs.FileType.NotFound:
        raise DataValidationError("parquet_files", TABLE, 1, f"input dataset not found: {path}")
    if kind == pafs.FileType.File:
        return DatasetFiles(filesystem, root, (root,))
    root = root.rstrip("/")
    found = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    files, ignored = [], []
    for entry in sorted(found, key=lambda e: e.path):
        parts = entry.path[len(root) :].strip("/").split("/")
        if entry.type != pafs.FileType.File or any(p.startswith(HIDDEN_PREFIXES) for p in parts):
            continue
        (files if parts[-1].lower().endswith(PARQUET_SUFFIXES) else ignored).append(entry.path)
    if not files:
        others = f"; {len(ignored)} other file(s) there are not read" if ignored else ""
        raise DataValidationError(
            "parquet_files",
            TABLE,
            1,
            f"no Parquet file ({', '.join('*' + s for s in PARQUET_SUFFIXES)}) in {path}{others}",
            ignored[0][len(root) :].lstrip("/") if ignored else None,
        )
    return DatasetFiles(filesystem, root, tuple(files), tuple(ignored))


def read_dataset(source: str | Path | DatasetFiles, contract: DataContract) -> pd.DataFrame:
    """Read a Parquet file or directory (hive partitions allowed) into a DataFrame.

    The contract's columns that the dataset has are read (validation names the missing ones).
    Every file is checked before any row is read: it is Parquet, names no column twice, has every
    contract column the other files have, in a type they share (numbers of different widths, or
    ``string`` and ``large_string``, are widened) and, for a timestamp column, in the same time
    zone. Timestamps come back as pandas datetimes (tz-aware when the files carry a zone).

    Raises:
        DataValidationError: ``parquet_files`` (see :func:`dataset_files`), ``parquet_readable``
            (files pyarrow cannot read, counted, the first named), ``unique_column_names``,
            ``parquet_columns`` (contract columns some files lack: the count of those files),
            ``timestamp_timezone`` (files whose timestamps are in another zone than most files,
            or without one) or ``parquet_schema`` (columns whose types the files disagree on).
    """
    files = source if isinstance(source, DatasetFiles) else dataset_files(source)
    schemas = _file_schemas(files)
    fields = _agreed_fields(files, schemas, contract)
    # the series id, the categoricals and the text are read as dictionaries (pandas:
    # categoricals): each distinct value is held once, and the files' own dictionaries are kept
    keyed = [c for c in (contract.series_id, *contract.categorical, *contract.text) if c in fields]
    keyed = [c for c in keyed if _is_text(fields[c].type)]
    for column in keyed:
        fields[column] = fields[column].with_type(pa.dictionary(pa.int32(), fields[column].type))
    read_options = ds.ParquetReadOptions(dictionary_columns=set(keyed))
    options: dict[str, Any] = {
        "filesystem": files.filesystem,
        "format": ds.ParquetFileFormat(read_options=read_options),
    }
    if files.is_directory:
        options.update(partitioning="hive", partition_base_dir=files.root)
    try:
        partitions = ds.dataset(list(files.files), **options).partitioning
        keys = [f for f in (partitions.schema if partitions else []) if f.name not in fields]
        # the first file's metadata: pandas' dtypes of the columns written from pandas
        schema = pa.schema([*fields.values(), *keys], metadata=schemas[0].metadata)
        dataset = ds.dataset(list(files.files), schema=schema, **options)
        columns = [c for c in contract.all_columns if c in dataset.schema.names]
        table: pa.Table = dataset.to_table(columns=columns)
        table = _as_dictionaries(table, [contract.series_id, *contract.categorical])  # keys
    except _ARROW_ERRORS as error:
        raise DataValidationError(
            "parquet_readable",
            TABLE,
            1,
            f"pyarrow cannot read the dataset: {_data_problem(error)}",
            _first_broken(files, schemas, contract),
        ) from None
    # column by column, each Arrow buffer freed once converted: the peak stays near one copy
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _as_dictionaries(table: pa.Table, columns: list[str | None]) -> pa.Table:
    """The string columns among ``columns`` (hive partition keys) dictionary-encoded, so that
    pandas reads them as categoricals: each distinct value is held once (the series id of 40 M
    rows takes 160 MB of codes instead of 840 MB of strings)."""
    for column in columns:
        if column is None or column not in table.column_names:
            continue
        if _is_text(table.schema.field(column).type):
            position = table.column_names.index(column)
            encoded = table.column(position).dictionary_encode()
            table = table.set_column(position, column, encoded)
    return table


def _file_schemas(files: DatasetFiles) -> list[pa.Schema]:
    schemas, broken = [], []
    for path in files.files:
        try:
            schemas.append(pq.read_schema(path, filesystem=files.filesystem))
        except _ARROW_ERRORS as error:
            broken.append(f"{files.name(path)}: {_data_problem(error)}")
    if broken:
        raise DataValidationError(
            "parquet_readable",
            TABLE,
            len(broken),
            f"{len(broken)} of {len(files.files)} file(s) are not readable Parquet",
            broken[0],
        )
    return schemas


def _agreed_fields(
    files: DatasetFiles, schemas: list[pa.Schema], contract: DataContract
) -> dict[str, pa.Field]:
    """The contract columns of the files, one field each, after checking that the files agree."""
    duplicated = list(  # of the columns read; others are left alone
        dict.fromkeys(
            name
            for schema in schemas
            for name, count in Counter(schema.names).items()
            if count > 1 and name in contract.all_columns
        )
    )
    if duplicated:
        raise DataValidationError(
            "unique_column_names",
            ", ".join(duplicated),
            len(duplicated),
            detail="the Parquet schema names these columns more than once",
        )
    names = [files.name(p) for p in files.files]
    held = [  # the contract columns of each file, partition keys of its path included
        {k: None for k in _partition_keys(name) if k in contract.all_columns}
        | {f.name: f for f in schema if f.name in contract.all_columns}
        for name, schema in zip(names, schemas, strict=True)
    ]
    union = [c for c in contract.all_columns if any(c in h for h in held)]
    lacking = [i for i, h in enumerate(held) if any(c not in h for c in union)]
    if lacking:
        missing = [c for c in union if any(c not in held[i] for i in lacking)]
        first = held[lacking[0]]
        raise DataValidationError(
            "parquet_columns",
            ", ".join(missing),
            len(lacking),
            detail=f"{len(lacking)} of {len(names)} files lack column(s) the others have",
            example=f"{names[lacking[0]]} has no {', '.join(c for c in missing if c not in first)}",
        )
    _same_timezone(contract.timestamp, names, [h.get(contract.timestamp) for h in held])
    fields, conflicts = {}, {}
    for column in union:
        present = [h[column] for h in held if h[column] is not None]
        if not present:  # a partition key only
            continue
        try:
            fields[column] = pa.unify_schemas(
                [pa.schema([f]) for f in present], promote_options="permissive"
            ).field(column)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            conflicts[column] = sorted({str(f.type) for f in present})
    if conflicts:
        raise DataValidationError(
            "parquet_schema",
            ", ".join(conflicts),
            len(conflicts),
            detail=(
                "the files of the dataset disagree on the type of these columns: "
                + "; ".join(f"{n}: {' vs '.join(kinds)}" for n, kinds in conflicts.items())
            ),
        )
    return fields


def _same_timezone(column: str, names: list[str], fields: list[pa.Field | None]) -> None:
    """Files whose timestamps are in different zones (or some without one) cannot be one series."""
    zones = [
        (name, field.type.tz or "no time zone")
        for name, field in zip(names, fields, strict=True)
        if field is not None and pa.types.is_timestamp(field.type)
    ]
    counts = Counter(zone for _, zone in zones)
    if len(counts) < 2:
        return
    common = counts.most_common(1)[0][0]
    other = [(name, zone) for name, zone in zones if zone != common]
    raise DataValidationError(
        "timestamp_timezone",
        column,
        len(other),
        detail=(
            f"{len(other)} of {len(zones)} files have timestamps in another time zone than "
            f"{common!r} ({', '.join(sorted(counts))}); write every file in one zone"
        ),
        example=f"{other[0][0]}: {other[0][1]}",
    )


def _partition_keys(name: str) -> list[str]:
    """The hive partition keys of a file's path relative to the dataset directory."""
    return [part.split("=", 1)[0] for part in name.split("/")[:-1] if "=" in part]


def _first_broken(
    files: DatasetFiles, schemas: list[pa.Schema], contract: DataContract
) -> str | None:
    """The first file whose contract columns cannot be read (the failure path: file by file)."""
    for path, schema in zip(files.files, schemas, strict=True):
        try:
            with files.filesystem.open_input_file(path) as handle:
                pq.ParquetFile(handle).read([c for c in contract.all_columns if c in schema.names])
        except _ARROW_ERRORS as error:
            return f"{files.name(path)}: {_data_problem(error)}"
    return None


def _data_problem(error: Exception) -> str:
    """pyarrow's first line about data it cannot read; an OSError of the disk is raised as is."""
    if isinstance(error, OSError) and error.errno is not None:
        raise error
    return (str(error).splitlines() or [type(error).__name__])[0]
