"""DFT validation inputs for the top candidates.

For each candidate: a pymatgen ``MPRelaxSet`` folder (INCAR, KPOINTS, POSCAR and POTCAR.spec,
the Materials Project's GGA/GGA+U relaxation settings) under ``dft/<candidate id>/``. POTCAR
files are licensed by VASP and are not shipped: the folder lists the POTCAR symbols to use, and
``pmg config`` (PMG_VASP_PSP_DIR) lets pymatgen write them where a licence is held. When
atomate2 is installed (``pip install 'matloop[workflows]'``) a jobflow Flow JSON of an
MP-compatible double relaxation followed by a static calculation is written beside them
(``jobflow.Flow.from_dict(json.load(...))``, then run with jobflow-remote or FireWorks).
"""

from __future__ import annotations

import json
from pathlib import Path

from pymatgen.core import Structure

from matloop.logs import quiet_third_party
from matloop.reports.cards import resolve_in_run
from matloop.schemas import CandidateResult, DFTInput

POTCAR_NOTE = ("POTCARs are licensed and not included: POTCAR.spec lists the symbols; with a "
               "VASP licence set PMG_VASP_PSP_DIR (pmg config --add PMG_VASP_PSP_DIR DIR) and "
               "write them with MPRelaxSet(structure).write_input(folder).")


def atomate2_available() -> bool:
    """Whether atomate2's Materials Project VASP makers can be imported."""
    try:
        from atomate2.vasp.jobs.mp import MPGGARelaxMaker, MPGGAStaticMaker  # noqa: F401
    except ImportError:
        return False
    return True


def atomate2_flow(structure: Structure, name: str) -> dict:
    """An MP-compatible jobflow Flow (GGA relax, relax again, static) as a JSON-ready dict."""
    from atomate2.vasp.jobs.mp import MPGGARelaxMaker, MPGGAStaticMaker
    from jobflow import Flow

    first = MPGGARelaxMaker(name="MP GGA relax 1").make(structure)
    second = MPGGARelaxMaker(name="MP GGA relax 2").make(first.output.structure,
                                                         prev_dir=first.output.dir_name)
    static = MPGGAStaticMaker(name="MP GGA static").make(second.output.structure,
                                                         prev_dir=second.output.dir_name)
    return Flow([first, second, static], output=static.output, name=name).as_dict()


def write_dft_inputs(candidates: list[CandidateResult], run_dir: Path, *, top: int = 3,
                     with_workflow: bool | None = None) -> list[DFTInput]:
    """Write VASP inputs (and an atomate2 Flow when available) for the best candidates.

    Args:
        top: How many distinct evaluated candidates get inputs.
        with_workflow: Write the atomate2 Flow (default: when atomate2 imports).
    """
    from pymatgen.io.vasp.sets import MPRelaxSet

    flows = atomate2_available() if with_workflow is None else with_workflow
    out: list[DFTInput] = []
    seen = set()
    for c in candidates:
        if len(out) >= top:
            break
        cif = resolve_in_run(run_dir, c.cif_path)
        key = (c.formula, c.spacegroup, round(c.energy_per_atom_ev or 0.0, 4))
        if c.status != "ok" or cif is None or key in seen:
            continue
        seen.add(key)
        structure = Structure.from_file(cif)
        folder = run_dir / "dft" / c.id / "MPRelaxSet"
        with quiet_third_party():  # "no POTCAR directory" is expected here
            MPRelaxSet(structure).write_input(folder, potcar_spec=True)
        workflow = None
        note = POTCAR_NOTE
        if flows:
            path = run_dir / "dft" / c.id / "atomate2_flow.json"
            path.write_text(json.dumps(atomate2_flow(structure, f"{c.formula} {c.id} MP GGA "
                                                                f"double relax + static"),
                                       indent=1))
            workflow = path.relative_to(run_dir).as_posix()
        else:
            note += (" atomate2 is not installed, so no workflow file was written "
                     "(pip install 'matloop[workflows]').")
        out.append(DFTInput(candidate_id=c.id, formula=c.formula, input_set="MPRelaxSet",
                            directory=folder.relative_to(run_dir).as_posix(),
                            files=sorted(p.name for p in folder.iterdir()), workflow=workflow,
                            note=note))
    if out:
        (run_dir / "dft" / "README.txt").write_text(
            "DFT validation inputs written by matloop for the top candidates.\n\n"
            "<id>/MPRelaxSet/: INCAR, KPOINTS, POSCAR, POTCAR.spec (Materials Project GGA/GGA+U "
            "relaxation settings, pymatgen MPRelaxSet).\n" + POTCAR_NOTE + "\n"
            "<id>/atomate2_flow.json (when atomate2 is installed): jobflow Flow of an "
            "MP-compatible relaxation, second relaxation and static calculation; load it with "
            "jobflow.Flow.from_dict(json.load(open(path))) and submit with jobflow-remote or "
            "FireWorks.\nAfter the static run, compute the energy above the hull against "
            "Materials Project entries with MP2020 corrections.\n")
    return out
