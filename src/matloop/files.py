"""Which files matloop may read on behalf of a chat message, a web request or a tool call.

One policy for every path that does not come straight from the person at the command line:
an allow-list of folders (resolved, with symlinks followed before the check, so neither ``..``
nor a link can leave them), no hidden files or folders inside them (``.env``, ``.ssh``,
``.git``), and a size limit for structure files. :func:`load_structure` is the one loader of
"a path, CIF text or POSCAR text" that tools, chat and the web app call.

    access = FileAccess([Path.cwd(), run_dir])
    structure = load_structure("POSCAR", access=access)       # a file inside an allowed folder
    structure = load_structure(cif_text, access=access)       # text is parsed, never a path
    load_structure("/etc/shadow.cif", access=access)          # FileAccessError, nothing read

Messages name the path and the problem, never what the file holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from matloop.errors import FileAccessError, StructureInputError, StructureTooLargeError
from matloop.materials.structures import (
    FORMATS,
    MAX_STRUCTURE_BYTES,
    as_structure,
    detect_text_format,
    is_ase_atoms,
    parse_structure_text,
    read_structure,
)

__all__ = ["FileAccess", "load_structure", "looks_like_structure_text"]


class FileAccess:
    """An allow-list of folders that files may be read from.

    Args:
        roots: Allowed folders. Each is resolved (symlinks followed) once, here; a relative
            path given to :meth:`resolve` is looked up in them in this order.
        max_structure_bytes: Largest structure file or text accepted.
        allow_hidden: Also allow files and folders whose name starts with a dot below a root.
        allow_hint: How the user widens the list, quoted in the refusal (the CLI flag).

    Raises:
        ValueError: No root given.
    """

    def __init__(self, roots: Iterable[str | Path], *,
                 max_structure_bytes: int = MAX_STRUCTURE_BYTES, allow_hidden: bool = False,
                 allow_hint: str = "pass --allow-dir DIR") -> None:
        resolved: list[Path] = []
        for root in roots:
            path = Path(root).expanduser().resolve()
            if path not in resolved:
                resolved.append(path)
        if not resolved:
            raise ValueError("FileAccess needs at least one allowed folder")
        if max_structure_bytes < 1:
            raise ValueError(f"max_structure_bytes must be positive, got {max_structure_bytes}")
        self.roots: tuple[Path, ...] = tuple(resolved)
        self.max_structure_bytes = max_structure_bytes
        self.allow_hidden = allow_hidden
        self.allow_hint = allow_hint

    @classmethod
    def working_directory(cls, *extra: str | Path, **options: object) -> FileAccess:
        """The current working directory (then ``extra`` folders) as the allowed folders."""
        return cls([Path.cwd(), *extra], **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"FileAccess(roots={[str(r) for r in self.roots]!r})"

    def describe(self) -> str:
        """The allowed folders, for messages."""
        return ", ".join(str(r) for r in self.roots)

    def allows(self, path: str | Path) -> bool:
        """Whether :meth:`resolve` accepts ``path`` (it need not exist)."""
        try:
            self.resolve(path)
        except FileAccessError:
            return False
        return True

    def resolve(self, path: str | Path) -> Path:
        """The real path of ``path`` if it lies inside an allowed folder.

        A relative path is taken relative to the first root that holds it (the first root
        when none does). Symlinks are followed before the check, so a link inside a root that
        points elsewhere is refused like the place it points to.

        Raises:
            FileAccessError: The path is empty or malformed, outside every allowed folder, or
                hidden (a name starting with a dot below the root).
        """
        raw = str(path)
        shown = raw if len(raw) <= 200 else raw[:200] + "…"
        if not raw.strip() or "\x00" in raw:
            raise FileAccessError(f"{shown!r} is not a path", hint="give a file name")
        candidates = [Path(raw.strip()).expanduser()]
        if not candidates[0].is_absolute():
            candidates = [root / candidates[0] for root in self.roots]
        real = candidates[0]
        for n, candidate in enumerate(candidates):
            try:
                resolved = candidate.resolve()
                exists = resolved.exists()
            except (OSError, RuntimeError, ValueError) as exc:  # loops, over-long names
                raise FileAccessError(f"{shown}: cannot be resolved ({type(exc).__name__})",
                                      hint="check the path") from exc
            if n == 0 or exists:
                real = resolved
            if exists:
                break
        root = next((r for r in self.roots if real.is_relative_to(r)), None)
        if root is None:
            raise FileAccessError(
                f"{shown} is outside the allowed folders ({self.describe()})",
                hint=f"copy it into {self.roots[0]}, or {self.allow_hint} to allow its folder")
        hidden = [part for part in real.relative_to(root).parts if part.startswith(".")]
        if hidden and not self.allow_hidden:
            raise FileAccessError(
                f"{shown}: hidden files and folders ({hidden[0]}) are not read",
                hint="copy the file to a folder whose name does not start with a dot")
        return real

    def structure_path(self, path: str | Path) -> Path:
        """:meth:`resolve`, then the checks a structure file needs (exists, regular, size)."""
        real = self.resolve(path)
        try:
            if not real.exists():
                raise StructureInputError(f"{path}: no such file",
                                          hint=f"check the path (allowed folders: "
                                               f"{self.describe()})")
            if not real.is_file():
                raise StructureInputError(f"{path}: not a regular file",
                                          hint="pass a structure file, not a folder or device")
            size = real.stat().st_size
        except OSError as exc:
            raise StructureInputError(f"{path}: cannot be read ({type(exc).__name__})",
                                      hint="check the file's permissions") from exc
        if size > self.max_structure_bytes:
            raise StructureTooLargeError(
                f"{path}: {size / 1024**2:.1f} MiB is larger than the "
                f"{self.max_structure_bytes / 1024**2:.0f} MiB limit for structure files",
                hint="pass one structure, not a trajectory or a log")
        return real


def looks_like_structure_text(spec: str) -> bool:
    """Whether ``spec`` is structure text (several lines, or a JSON object) and not a path."""
    text = spec.strip()
    return "\n" in text or text.startswith("{")


def load_structure(spec: str | Path | Structure | Any, *, access: FileAccess,
                   allow_vacuum: bool = False, source: str | None = None) -> Structure:
    """A validated structure from a file path, CIF, POSCAR, extended XYZ or JSON text, or a
    pymatgen ``Structure`` / ASE ``Atoms`` object.

    A :class:`~pathlib.Path`, or a one-line string, is a path: it must pass ``access`` before
    anything is opened. Any other string is structure text, whose format is detected. Objects
    are converted and validated (no file is read).

    Args:
        spec: The path or the text.
        access: Folders that may be read.
        allow_vacuum: Accept cells with more volume per atom than a bulk crystal can have
            (molecules or slabs in a vacuum box).
        source: Name of text input in messages (default: "<format> text").

    Raises:
        FileAccessError: The path is outside the allowed folders or hidden.
        StructureInputError: Missing, too large, unparseable or unphysical; the message never
            quotes the content.
    """
    if isinstance(spec, Structure) or is_ase_atoms(spec):
        return as_structure(spec, source=source, allow_vacuum=allow_vacuum)
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise StructureInputError(f"expected a path or structure text, got "
                                  f"{type(spec).__name__}")
    if looks_like_structure_text(spec):
        size = len(spec.encode("utf-8", errors="replace"))
        if size > access.max_structure_bytes:
            raise StructureTooLargeError(
                f"{source or 'structure text'}: {size / 1024**2:.1f} MiB is larger than the "
                f"{access.max_structure_bytes / 1024**2:.0f} MiB limit for structures",
                hint="pass one structure")
        fmt = detect_text_format(spec)
        if fmt is None:
            raise StructureInputError(
                f"{source or 'structure text'}: not CIF, POSCAR, extended XYZ or pymatgen JSON",
                hint="pass a file path, or the complete text of one of "
                     f"{', '.join(FORMATS)}")
        return parse_structure_text(spec, fmt, source=source or f"{fmt} text",
                                    allow_vacuum=allow_vacuum,
                                    max_bytes=access.max_structure_bytes)
    path = access.structure_path(spec)
    return read_structure(path, allow_vacuum=allow_vacuum, max_bytes=access.max_structure_bytes)
