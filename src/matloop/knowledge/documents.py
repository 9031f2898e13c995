"""Documents, chunking, and the readers that turn files into documents.

Every reader yields :class:`Document` or :class:`IngestProblem` items: a bad record (a malformed
JSONL line, an entry with no abstract) is reported with its file and line and does not stop the
rest of the file. A file that cannot be read at all (unreadable PDF, CSV without the needed
columns) raises :class:`KnowledgeInputError`, which the batch ingest reports and moves past.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from matloop.errors import MatloopError

Kind = Literal["papers", "abstracts", "bibtex", "pdf", "recipes", "cards"]
#: Document kinds, also the values of ``--kind`` and of the ``kind`` search filter.
KINDS: tuple[str, ...] = get_args(Kind)

STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".extxyz", ".xyz")
RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz", ".tsv",
                   ".ndjson")
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.IGNORECASE)


class KnowledgeInputError(MatloopError, ValueError):
    """Input the knowledge base cannot use: a bad file, record, query or option."""


class IngestProblem(BaseModel):
    """A document or file that was not ingested, and why."""

    origin: str = Field(description="File, with the line or entry when known.")
    message: str = Field(description="What is wrong with it.")
    hint: str | None = Field(default=None, description="What to do about it.")


class Document(BaseModel):
    """One source document before chunking."""

    id: str = Field(description="Stable identity: doi:<doi>, recipe:<id>, card:<...>, ...")
    kind: Kind = Field(description="Document kind.")
    text: str = Field(description="Full text to chunk and index.")
    title: str | None = Field(default=None, description="Title, if known.")
    doi: str | None = Field(default=None, description="DOI (lower case, without resolver).")
    year: int | None = Field(default=None, description="Publication year, if known.")
    authors: list[str] = Field(default_factory=list, description="Author names.")
    origin: str = Field(default="", description="File and line or entry it came from.")
    origin_file: str = Field(default="", description="File it came from.")
    embed_text: str | None = Field(
        default=None,
        description="Compact text embedded instead of the chunk text (used for one-chunk "
                    "documents such as recipes).")
    primary_formula: str | None = Field(
        default=None, description="Canonical formula the document is about (recipe target, "
                                  "card material), if any.")
    formulas: list[str] = Field(default_factory=list,
                                description="Canonical formulas known from structured fields.")
    single_chunk: bool = Field(default=False, description="Index as one chunk, whatever its "
                                                          "length.")
    extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Further scalar metadata stored with each chunk.")

    def content_hash(self) -> str:
        """Hash of everything that is indexed; a change means the document is re-ingested."""
        payload = json.dumps(
            [self.kind, self.text, self.title, self.doi, self.year, self.embed_text,
             self.primary_formula, self.formulas, sorted(self.extra.items())],
            sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


#: DOI syntax accepted: ``10.<registrant>/<suffix>``, the registrant digits (with optional
#: ``.``-separated sub-codes), the suffix from Crossref's recommended character set
#: (``-._;()/:``, letters, digits), which covers nearly all registered DOIs. Anything else
#: (quotes, angle brackets, spaces, brackets) could break out of a link or markup and is dropped.
DOI_PATTERN = re.compile(r"^10\.\d+(?:\.\d+)*/[-._;()/:a-z0-9]+$")
_NO_DOI = frozenset({"", "n/a", "na", "none", "null", "nan", "-", "--"})


def normalise_doi(value: Any) -> str | None:
    """DOI in lower case without resolver prefix, or None when it is not a valid DOI.

    Resolver prefixes (``https://doi.org/``, ``doi:``) and trailing ``.,;`` are removed; the
    rest must match :data:`DOI_PATTERN`.
    """
    if value is None:
        return None
    text = str(value).strip()
    text = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", text, flags=re.IGNORECASE)
    text = text.strip().rstrip(".,;").lower()
    return text if len(text) <= 300 and DOI_PATTERN.match(text) else None


def invalid_doi_note(value: Any, origin: str) -> IngestProblem | None:
    """A note that a record's DOI field was dropped because it is not a valid DOI.

    None when the field is empty, a placeholder (n/a, none, ...) or a valid DOI. The note does
    not quote the value (it may be markup).
    """
    if value is None or str(value).strip().lower() in _NO_DOI or normalise_doi(value):
        return None
    return IngestProblem(origin=origin, message=f"{_where(origin)}: DOI field is not a valid "
                                                "DOI; the record was indexed without it",
                         hint="a DOI looks like 10.1234/abc-5(6); quotes, spaces and angle "
                              "brackets are not allowed")


def _year(value: Any) -> int | None:
    if value is None:
        return None
    match = re.search(r"\b(1[5-9]\d\d|20\d\d)\b", str(value))
    return int(match.group(1)) if match else None


def _authors(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(a).strip() for a in value if str(a).strip()]
    text = str(value)
    parts = re.split(r"\s+and\s+|;", text) if (" and " in text or ";" in text) else [text]
    return [p.strip() for p in parts if p.strip()]


def _clean(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if text.lower() in ("nan", "none", "null"):
        return ""
    return re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()


def chunk_text(text: str, *, size: int = 800, overlap: int = 100) -> list[str]:
    """Split text into chunks of at most ``size`` characters that overlap by about ``overlap``.

    Cuts prefer a paragraph or sentence end, then a space, in the last fifth of a window.
    """
    if size < 50:
        raise ValueError(f"chunk size must be at least 50 characters, got {size}")
    if not 0 <= overlap < size // 2:
        raise ValueError(f"chunk overlap must be in [0, {size // 2}), got {overlap}")
    text = re.sub(r"[ \t]+", " ", text).strip()
    if len(text) <= size:
        return [text] if text else []
    chunks, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            window = text[start + int(size * 0.8):end]
            cut = -1
            for sep in ("\n\n", ". ", "\n", "; ", " "):
                pos = window.rfind(sep)
                if pos >= 0:
                    cut = start + int(size * 0.8) + pos + len(sep)
                    break
            if cut > start:
                end = cut
        chunk = text[start:end].strip()
        if chunk:
            chunks.append(chunk)
        if end >= len(text):
            break
        nxt = end - overlap
        space = text.find(" ", nxt, end)
        start = space + 1 if overlap and space >= 0 else nxt
    return chunks


# ---------------------------------------------------------------- record files (JSONL / CSV)

def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace", newline="")


def _is_csv(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".csv", ".csv.gz", ".tsv"))


def csv_columns(path: Path) -> list[str]:
    """Header of a CSV file (empty for other files)."""
    if not _is_csv(path):
        return []
    with _open_text(path) as fh:
        delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
        header = next(csv.reader(fh, delimiter=delimiter), [])
    return [h.strip() for h in header]


def iter_records(path: Path) -> Iterator[tuple[str, dict[str, Any] | IngestProblem]]:
    """Records of a JSONL, JSON-array or CSV file as (origin, record or problem)."""
    try:
        if _is_csv(path):
            delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
            with _open_text(path) as fh:
                reader = csv.DictReader(fh, delimiter=delimiter)
                for row in reader:
                    origin = f"{path}:{reader.line_num}"
                    yield origin, {(k or "").strip(): v for k, v in row.items()}
            return
        with _open_text(path) as fh:
            head = fh.read(4096)
        if head.lstrip().startswith("["):
            with _open_text(path) as fh:
                try:
                    rows = json.load(fh)
                except json.JSONDecodeError as exc:
                    yield str(path), IngestProblem(
                        origin=str(path), message=f"not valid JSON ({exc.msg} at line "
                                                  f"{exc.lineno})",
                        hint="fix the file or write one JSON object per line (JSONL)")
                    return
            for i, row in enumerate(rows, start=1):
                yield from _record_or_problem(f"{path}#{i}", row)
            return
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                origin = f"{path}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield origin, IngestProblem(
                        origin=origin, message=f"{path.name} line {lineno} is not valid JSON "
                                               f"({exc.msg})",
                        hint="each line of a JSONL file must be one complete JSON object")
                    continue
                yield from _record_or_problem(origin, row)
    except (OSError, EOFError, UnicodeError) as exc:
        raise KnowledgeInputError(f"{path}: cannot be read ({exc})",
                                  hint="check the file is complete and not corrupted") from exc


def _record_or_problem(origin: str, row: Any,
                       ) -> Iterator[tuple[str, dict[str, Any] | IngestProblem]]:
    if isinstance(row, dict):
        yield origin, row
    else:
        yield origin, IngestProblem(origin=origin, message=f"expected a JSON object, got "
                                                           f"{type(row).__name__}")


def peek_keys(path: Path, *, records: int = 20) -> set[str]:
    """Field names (lower case) of the first readable records of a record file."""
    keys: set[str] = set()
    seen = 0
    for _, item in iter_records(path):
        if isinstance(item, dict):
            keys.update(str(k).lower() for k in item)
            seen += 1
            if seen >= records:
                break
    return keys


def require_columns(path: Path, required: tuple[str, ...], *, kind: str,
                    optional: tuple[str, ...] = ()) -> None:
    """Fail with the missing names when a CSV file lacks needed columns."""
    columns = csv_columns(path)
    if not columns:
        return
    lower = {c.lower() for c in columns}
    missing = [c for c in required if c.lower() not in lower]
    if missing:
        raise KnowledgeInputError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(columns)})",
            hint=f"a {kind} CSV needs columns {', '.join(required)}"
                 + (f" and may have {', '.join(optional)}" if optional else ""))


def _get(row: dict[str, Any], *names: str) -> Any:
    lower = {str(k).lower(): v for k, v in row.items()}
    for name in names:
        value = lower.get(name)
        if value not in (None, "") and _clean(value) != "":
            return value
    return None


def _paper_id(kind: str, doi: str | None, row_id: Any, title: str, text: str) -> str:
    if doi:
        return f"doi:{doi}"
    if row_id not in (None, ""):
        return f"{kind}:{row_id}"
    return f"{kind}:" + hashlib.sha256((title + "\n" + text).encode()).hexdigest()[:16]


def papers_from_records(path: Path) -> Iterator[Document | IngestProblem]:
    """Papers from JSONL/CSV with title, abstract and optional authors, year, doi."""
    require_columns(path, ("title", "abstract"), kind="papers",
                    optional=("authors", "year", "doi"))
    for origin, row in iter_records(path):
        if isinstance(row, IngestProblem):
            yield row
            continue
        title, abstract = _clean(_get(row, "title")), _clean(_get(row, "abstract", "text"))
        if not title or not abstract:
            missing = " and ".join(n for n, v in (("title", title), ("abstract", abstract))
                                   if not v)
            yield IngestProblem(origin=origin, message=f"{_where(origin)}: missing field "
                                                       f"{missing}",
                                hint="each paper needs a title and an abstract")
            continue
        doi = normalise_doi(_get(row, "doi"))
        if note := invalid_doi_note(_get(row, "doi"), origin):
            yield note
        yield Document(
            id=_paper_id("papers", doi, _get(row, "id"), title, abstract), kind="papers",
            text=f"{title}\n\n{abstract}", title=title, doi=doi,
            year=_year(_get(row, "year", "date", "published")),
            authors=_authors(_get(row, "authors", "author")), origin=origin,
            origin_file=str(path))


def abstracts_from_records(path: Path) -> Iterator[Document | IngestProblem]:
    """Text documents (the materials text corpus format: id, doi, title, text, text_type)."""
    require_columns(path, ("text",), kind="abstracts", optional=("id", "doi", "title",
                                                                  "text_type"))
    for origin, row in iter_records(path):
        if isinstance(row, IngestProblem):
            yield row
            continue
        text = _clean(_get(row, "text", "abstract"))
        if not text:
            yield IngestProblem(origin=origin, message=f"{_where(origin)}: missing field text",
                                hint="each record needs a non-empty text")
            continue
        title = _clean(_get(row, "title")) or None
        doi = normalise_doi(_get(row, "doi"))
        if note := invalid_doi_note(_get(row, "doi"), origin):
            yield note
        extra: dict[str, str | int | float | bool] = {}
        if (tt := _clean(_get(row, "text_type"))):
            extra["text_type"] = tt
        body = f"{title}\n\n{text}" if title else text
        yield Document(
            id=_paper_id("abstracts", doi, _get(row, "id"), title or "", text),
            kind="abstracts", text=body, title=title, doi=doi,
            year=_year(_get(row, "year")), authors=_authors(_get(row, "authors")),
            origin=origin, origin_file=str(path), extra=extra)


def _where(origin: str) -> str:
    path, _, line = origin.rpartition(":")
    if path and line.isdigit():
        return f"{Path(path).name} line {line}"
    return Path(origin).name


# ---------------------------------------------------------------------------- BibTeX, PDF

def bibtex_documents(path: Path) -> Iterator[Document | IngestProblem]:
    """Entries of a BibTeX file with abstracts (entries without one are reported)."""
    import bibtexparser
    from bibtexparser.bparser import BibTexParser

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise KnowledgeInputError(f"{path}: cannot be read ({exc})") from exc
    parser = BibTexParser(common_strings=True)
    parser.ignore_nonstandard_types = False
    try:
        database = bibtexparser.loads(text, parser=parser)
    except Exception as exc:  # bibtexparser raises pyparsing and other errors
        raise KnowledgeInputError(f"{path}: not a readable BibTeX file ({exc})",
                                  hint="check the braces and @type{key, ...} entries") from exc
    if not database.entries:
        raise KnowledgeInputError(f"{path}: no BibTeX entries found",
                                  hint="entries look like @article{key, title={...}, ...}")
    for entry in database.entries:
        key = entry.get("ID", "?")
        origin = f"{path}#{key}"
        title, abstract = _clean(entry.get("title")), _clean(entry.get("abstract"))
        if not abstract:
            yield IngestProblem(origin=origin, message=f"BibTeX entry {key} has no abstract",
                                hint="add an abstract field; only entries with one are indexed")
            continue
        doi = normalise_doi(entry.get("doi"))
        if note := invalid_doi_note(entry.get("doi"), origin):
            yield note
        doc_id = f"doi:{doi}" if doi else f"bibtex:{key}"
        yield Document(id=doc_id, kind="bibtex", text=f"{title}\n\n{abstract}" if title
                       else abstract, title=title or None, doi=doi, year=_year(entry.get("year")),
                       authors=_authors(_clean(entry.get("author"))), origin=origin,
                       origin_file=str(path))


def pdf_document(path: Path) -> Document:
    """The text of a PDF as one document (title from metadata or first line, DOI from text)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:
                raise KnowledgeInputError(f"{path}: the PDF is encrypted",
                                          hint="save an unencrypted copy") from exc
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except KnowledgeInputError:
        raise
    except Exception as exc:  # pypdf raises many error types on damaged files
        raise KnowledgeInputError(
            f"{path}: unreadable PDF ({type(exc).__name__}: {str(exc)[:120]})",
            hint="check that the file is a complete PDF; re-download or re-export it") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text.strip():
        raise KnowledgeInputError(f"{path}: the PDF has no extractable text",
                                  hint="it is probably scanned; run OCR on it first")
    first_line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    title = _clean(meta_title) or first_line[:200]
    match = _DOI.search(text)
    doi = normalise_doi(match.group(1)) if match else None
    # Without a DOI the id is a hash of the extracted text: the same PDF under another name or
    # folder is the same document, and two different PDFs named paper.pdf are not.
    digest = hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()[:16]
    return Document(id=f"doi:{doi}" if doi else f"pdf:{digest}", kind="pdf", text=text,
                    title=title, doi=doi, origin=str(path), origin_file=str(path))


# ---------------------------------------------------------------------------- kind detection

def detect_kind(path: Path) -> Kind:
    """Kind of a file from its suffix and, for record files, the fields of its first record."""
    name = path.name.lower()
    if name.endswith(".pdf"):
        return "pdf"
    if name.endswith((".bib", ".bibtex")):
        return "bibtex"
    if name.endswith(STRUCTURE_SUFFIXES) or name.startswith(("poscar", "contcar")):
        return "cards"
    if name.endswith(RECORD_SUFFIXES):
        if name.endswith(".json"):
            try:
                data = json.loads(path.read_text(errors="replace"))
            except (OSError, json.JSONDecodeError):
                data = None
            if isinstance(data, dict) and "lattice" in data and "sites" in data:
                return "cards"
        keys = {c.lower() for c in csv_columns(path)} or peek_keys(path)
        if "precursors" in keys and ({"target_formula", "target"} & keys):
            return "recipes"
        if "abstract" in keys:
            return "papers"
        if "text" in keys:
            return "abstracts"
        raise KnowledgeInputError(
            f"{path}: cannot tell what kind of records it holds (fields: "
            f"{', '.join(sorted(keys)) or 'none'})",
            hint="papers need title+abstract, abstracts need text, recipes need "
                 "target_formula+precursors; or pass --kind")
    raise KnowledgeInputError(
        f"{path}: unknown file type",
        hint="supported: .pdf, .bib, .jsonl/.json/.csv (optionally .gz), structure files "
             f"({', '.join(STRUCTURE_SUFFIXES)}); or pass --kind one of {', '.join(KINDS)}")
