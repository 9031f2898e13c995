"""Reading tables of compositions or structures (and a target column) for the surrogates.

A table is a CSV file (optionally ``.gz``) or a pandas DataFrame with one input column:

* ``formula`` or ``composition``: a chemical formula per row;
* ``cif``: the text of a CIF per row;
* ``structure``: CIF text, or a path to a structure file (CIF, POSCAR, extxyz, pymatgen JSON),
  relative paths being taken from the table's folder; ``structure_path``, ``path`` and ``file``
  are also read as paths.

Structure columns win over formula columns when both exist. Every problem names the column
and the line of the file (the line where the record starts, so multi-line CIF cells count).
Formulas are read as text, never as missing values: ``NaN`` is sodium nitride.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pymatgen.core import Composition, Structure

from matloop.errors import MatloopError, StructureInputError
from matloop.logs import quiet_third_party

InputKind = Literal["composition", "structure"]

FORMULA_COLUMNS = ("formula", "composition")
CIF_COLUMNS = ("cif",)
STRUCTURE_COLUMNS = ("structure",)
PATH_COLUMNS = ("structure_path", "path", "file")

#: Most offending lines quoted in one error message.
_MAX_QUOTED = 5


class SurrogateDataError(MatloopError, ValueError):
    """A training or prediction table cannot be used (missing column, bad value, too few rows)."""


@dataclass
class MaterialInput:
    """One material to featurize: its composition and, when known, its structure.

    Attributes:
        composition: The composition (from the formula or the structure).
        structure: The crystal structure, or ``None`` for a formula-only input.
        label: Short name for messages and results (the formula or the file).
        line: Line of the table where the row starts (``None`` outside a file).

    """

    composition: Composition
    structure: Structure | None = None
    label: str = ""
    line: int | None = None

    @property
    def formula(self) -> str:
        """Reduced formula."""
        return self.composition.reduced_formula


@dataclass
class Table:
    """Inputs (and targets) read from a table, with what is needed for provenance."""

    inputs: list[MaterialInput]
    input_column: str
    input_kind: InputKind
    source: str
    targets: np.ndarray | None = None
    target_column: str | None = None
    data_sha256: str = ""
    columns: list[str] = field(default_factory=list)

    @property
    def has_structures(self) -> bool:
        """Whether every row carries a structure."""
        return self.input_kind == "structure"


# ---------------------------------------------------------------------------------------------
# Raw rows


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by the caller)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and the line where each row starts (csv keeps multi-line cells intact)."""
    if not path.is_file():
        raise SurrogateDataError(f"{path}: no such file", hint="check the path of --data")
    csv.field_size_limit(2**31 - 1)
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise SurrogateDataError(f"{path}: the file is empty",
                                         hint="expected a CSV file with a header line")
            rows, lines = [], []
            previous_end = reader.line_num
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(previous_end + 1)
                previous_end = reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile) as exc:
        raise SurrogateDataError(
            f"{path}: cannot be read as CSV ({type(exc).__name__}: {exc})",
            hint="pass a UTF-8 CSV file, optionally gzip-compressed (.csv.gz)",
        ) from exc
    header = [h.strip() for h in header]
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise SurrogateDataError(
                f"{path}: line {line} has {len(row)} fields but the header has {len(header)}",
                hint="quote cells that contain commas or line breaks",
            )
    return header, rows, lines


def _frame_rows(frame: Any) -> tuple[list[str], list[list[str]], list[int]]:
    header = [str(c).strip() for c in frame.columns]
    rows = [["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
             for v in rec] for rec in frame.itertuples(index=False, name=None)]
    return header, rows, [i + 2 for i in range(len(rows))]  # as if written with a header


def _find(header: Sequence[str], names: Iterable[str]) -> int | None:
    lowered = [h.lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _quote(items: list[tuple[int, str]]) -> str:
    shown = ", ".join(f"line {line} ({value[:40]!r})" for line, value in items[:_MAX_QUOTED])
    more = len(items) - _MAX_QUOTED
    return shown + (f" and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------------------------------
# Parsing cells


def parse_formula(text: str, *, where: str = "") -> Composition:
    """Composition from a formula; a clear error for nonsense, unknown elements or no atoms."""
    from matloop.materials.references import parse_composition

    cleaned = text.strip()
    if not cleaned:
        raise SurrogateDataError(
            f"{where}empty formula",
            hint="every row needs a formula (pandas reads the formula NaN, sodium nitride, as a "
                 "missing value unless read_csv gets keep_default_na=False)")
    try:
        comp = parse_composition(cleaned)
    except MatloopError as exc:
        raise SurrogateDataError(f"{where}{exc.message}", hint=exc.hint) from exc
    if any(amount < 0 for amount in comp.values()):
        raise SurrogateDataError(f"{where}formula {cleaned!r} has a negative amount")
    return comp


def parse_cif_text(text: str, *, where: str = "") -> Structure:
    """Structure from CIF text, validated like every structure matloop reads."""
    from pymatgen.io.cif import CifParser

    from matloop.materials.structures import validate_structure

    try:
        with quiet_third_party():
            parsed = CifParser.from_str(text, occupancy_tolerance=1.0).parse_structures(
                primitive=False, on_error="raise")
        if not parsed:
            raise ValueError("the CIF holds no structure")
    except Exception as exc:  # pymatgen's CIF parser raises many types
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise SurrogateDataError(f"{where}CIF text could not be parsed "
                                 f"({type(exc).__name__}: {first})",
                                 hint="check that the cell holds a complete CIF") from exc
    try:
        return validate_structure(parsed[0], source=where.rstrip(": ") or "CIF text")
    except StructureInputError as exc:
        raise SurrogateDataError(exc.message, hint=exc.hint) from exc


def looks_like_cif(text: str) -> bool:
    """Whether a string is CIF text rather than a path."""
    stripped = text.lstrip()
    return "\n" in stripped and ("_cell_length_a" in stripped or stripped.startswith("data_"))


def load_structure(spec: str, *, base: Path | None = None, where: str = "") -> Structure:
    """Read a structure from CIF text or a file path (relative to ``base``)."""
    from matloop.materials.structures import read_structure

    if looks_like_cif(spec):
        return parse_cif_text(spec, where=where)
    path = Path(spec.strip())
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        return read_structure(path)
    except StructureInputError as exc:
        raise SurrogateDataError(f"{where}{exc.message}", hint=exc.hint) from exc


# ---------------------------------------------------------------------------------------------
# Tables


def read_table(data: str | Path | Any, *, target: str | None = None,
               require_target: bool = True, min_rows: int = 1) -> Table:
    """Read a table of materials and (when ``require_target``) a numeric target column.

    Args:
        data: Path to a CSV/CSV.gz file, or a pandas DataFrame.
        target: Name of the target column (matched case-insensitively).
        require_target: Fail when the target column is missing; otherwise it is optional.
        min_rows: Fewest usable rows accepted.

    Raises:
        SurrogateDataError: Naming the column and lines that are wrong and what to do.

    """
    if isinstance(data, str | Path):
        path = Path(data)
        header, rows, lines = _read_csv(path)
        source, base = str(path), path.parent
    else:
        header, rows, lines = _frame_rows(data)
        source, base = "DataFrame", None
    name = Path(source).name

    structure_col = _find(header, CIF_COLUMNS + STRUCTURE_COLUMNS + PATH_COLUMNS)
    formula_col = _find(header, FORMULA_COLUMNS)
    if structure_col is None and formula_col is None:
        raise SurrogateDataError(
            f"{name}: no input column; the columns are {', '.join(header) or '(none)'}",
            hint="add a 'formula' (or 'composition') column, or a 'cif'/'structure' column "
                 "with CIF text or structure file paths",
        )
    kind: InputKind = "structure" if structure_col is not None else "composition"
    col = structure_col if structure_col is not None else formula_col
    assert col is not None

    target_idx = _find(header, [target.lower()]) if target else None
    if target and target_idx is None and require_target:
        numeric = [h for i, h in enumerate(header) if i != col and _mostly_numeric(rows, i)]
        raise SurrogateDataError(
            f"{name}: no target column {target!r}; the columns are {', '.join(header)}",
            hint=(f"name the target column with --target, e.g. --target {numeric[0]}"
                  if numeric else "add a numeric column named after the property"),
        )

    if len(rows) < min_rows:
        raise SurrogateDataError(
            f"{name}: {len(rows)} data rows; at least {min_rows} are needed",
            hint="add more rows (a surrogate needs tens of examples at the very least), "
                 "or lower --folds",
        )

    targets = None
    if target_idx is not None:
        values, bad = [], []
        for row, line in zip(rows, lines, strict=True):
            cell = row[target_idx].strip()
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                bad.append((line, cell))
            values.append(value)
        if bad:
            raise SurrogateDataError(
                f"{name}: column {header[target_idx]!r} has {len(bad)} missing or non-numeric "
                f"value(s): {_quote(bad)}",
                hint="every row needs a finite number in the target column; remove or fix "
                     "those rows",
            )
        targets = np.asarray(values, dtype=float)

    inputs, bad_inputs = [], []
    first_error: SurrogateDataError | None = None
    for row, line in zip(rows, lines, strict=True):
        cell = row[col]
        where = f"{name} line {line}, column {header[col]!r}: "
        try:
            if kind == "structure":
                s = load_structure(cell, base=base, where=where)
                label = s.composition.reduced_formula
                inputs.append(MaterialInput(s.composition, s, label, line))
            else:
                comp = parse_formula(cell, where=where)
                inputs.append(MaterialInput(comp, None, cell.strip(), line))
        except SurrogateDataError as exc:
            bad_inputs.append((line, cell.strip().splitlines()[0] if cell.strip() else ""))
            first_error = first_error or exc
    if first_error is not None:
        what = "structure" if kind == "structure" else "formula"
        raise SurrogateDataError(
            f"{name}: {len(bad_inputs)} unreadable {what}(s) in column {header[col]!r}: "
            f"{_quote(bad_inputs)}; first problem: {first_error.message}",
            hint=first_error.hint or "fix or remove those rows",
        )

    digest = hashlib.sha256()
    for row in rows:
        digest.update(row[col].strip().encode())
        digest.update(b"\x1f")
        if target_idx is not None:
            digest.update(repr(float(row[target_idx])).encode())
        digest.update(b"\x1e")
    return Table(inputs=inputs, input_column=header[col], input_kind=kind, source=source,
                 targets=targets, target_column=header[target_idx] if target_idx is not None
                 else None, data_sha256=digest.hexdigest(), columns=header)


def _mostly_numeric(rows: list[list[str]], idx: int) -> bool:
    sample = [r[idx] for r in rows[:50]]
    ok = 0
    for cell in sample:
        try:
            float(cell)
            ok += 1
        except ValueError:
            pass
    return bool(sample) and ok >= 0.9 * len(sample)


def as_inputs(items: Iterable[Any]) -> list[MaterialInput]:
    """Materials from formulas, Compositions, Structures or MaterialInputs (for ``predict``)."""
    out = []
    for i, item in enumerate(items):
        if isinstance(item, MaterialInput):
            out.append(item)
        elif isinstance(item, Structure):
            out.append(MaterialInput(item.composition, item, item.composition.reduced_formula))
        elif isinstance(item, Composition):
            out.append(MaterialInput(item, None, item.reduced_formula))
        elif isinstance(item, str):
            if looks_like_cif(item):
                s = parse_cif_text(item, where=f"input {i}: ")
                out.append(MaterialInput(s.composition, s, s.composition.reduced_formula))
            else:
                out.append(MaterialInput(parse_formula(item, where=f"input {i}: "), None,
                                         item.strip()))
        else:
            raise SurrogateDataError(
                f"input {i}: cannot predict from a {type(item).__name__}",
                hint="pass formulas, CIF text, pymatgen Compositions or Structures",
            )
    return out
