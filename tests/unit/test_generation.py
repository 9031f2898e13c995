"""Candidate generation: generators, constraints, determinism, uniqueness, novelty, errors."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition, Lattice, Structure

from matloop.errors import MatloopError
from matloop.generation import (
    Candidate,
    GenerationError,
    GenerationRequest,
    UnknownGeneratorError,
    generate,
    generate_report,
    register_generator,
)
from matloop.generation.chemistry import charge_balanced, check_validity, oxidation_assignments
from matloop.generation.matching import NoveltyIndex, novelty_label, unique_flags
from matloop.generation.prototype import templates
from matloop.materials.references import ReferencePhase
from matloop.materials.structures import min_interatomic_distance

STATIC = ("prototype", "substitution")


def rocksalt(a: float = 5.64, species: tuple[str, str] = ("Na", "Cl")) -> Structure:
    return Structure.from_spacegroup(225, Lattice.cubic(a), list(species),
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def assert_sound(c: Candidate, *, elements: set[str] | None = None,
                 formula: str | None = None) -> None:
    s = c.get_structure()
    assert c.valid and not c.validity_notes, c.validity_notes
    assert charge_balanced(s.composition)
    assert min_interatomic_distance(s) >= 0.5
    assert c.formula == s.composition.reduced_formula
    assert c.n_atoms == len(s)
    if formula:
        assert c.formula == Composition(formula).reduced_formula
    if elements:
        assert {el.symbol for el in s.composition.elements} == elements
    assert c.provenance and "seed" in c.provenance


def test_prototype_library_has_templates_for_40_types() -> None:
    names = {t.prototype.name for t in templates()}
    assert len(names) >= 40
    with_lattice = [t for t in templates() if t.species is not None]
    assert len(with_lattice) >= 40


@pytest.mark.parametrize("method", ["prototype", "substitution", "random"])
def test_each_generator_makes_sound_candidates_of_the_composition(method: str) -> None:
    cands = generate(GenerationRequest(composition="KMgF3", methods=[method], n=3, seed=1))
    assert len(cands) == 3
    for c in cands:
        assert c.method == method
        assert_sound(c, formula="KMgF3")


def test_prototype_puts_big_cation_on_the_perovskite_a_site() -> None:
    (first, *_) = generate(GenerationRequest(composition="SrTiO3", methods=["prototype"], n=2))
    assert first.provenance["prototype"] == "perovskite"
    assert first.provenance["decoration"] == {"A": "Sr", "B": "Ti", "X": "O"}
    assert first.provenance["oxidation_states"] == {"Sr": 2, "Ti": 4, "O": -2}
    # Volume rescaled from the example decoration: within 15 % of experiment (59.5 Å^3).
    assert first.get_structure().volume == pytest.approx(3.905**3, rel=0.15)


def test_substitution_provenance_has_parent_map_and_probability() -> None:
    cands = generate(GenerationRequest(chemsys="K-Mg-F", methods=["substitution"], n=4))
    probs = [c.provenance["probability"] for c in cands]
    assert probs == sorted(probs, reverse=True)  # ranked by probability
    for c in cands:
        assert_sound(c, elements={"K", "Mg", "F"})
        prov = c.provenance
        assert prov["parent"] and prov["parent_formula"]
        assert 0 < prov["probability"] <= 1
        assert set(prov["substitution"].values()) <= {"K+", "Mg2+", "F-"}


def test_substitution_checks_charge_balance_itself() -> None:
    # Fe2+/Fe3+ only: every candidate of Li-Fe-O must be neutral with those states.
    for c in generate(GenerationRequest(chemsys="Li-Fe-O", methods=["substitution"], n=5)):
        states = c.provenance["oxidation_states"]
        comp = c.get_structure().composition
        assert sum(comp[el] * q for el, q in states.items()) == pytest.approx(0)


def test_alloys_decorate_intermetallic_prototypes() -> None:
    cands = generate(GenerationRequest(chemsys="Ni-Sn-Ti", methods=["prototype"], n=4))
    protos = {c.provenance["prototype"] for c in cands}
    assert protos & {"half_heusler", "heusler"}
    for c in cands:
        assert_sound(c, elements={"Ni", "Sn", "Ti"})


def test_random_search_respects_space_groups_and_size() -> None:
    req = GenerationRequest(composition="MgF2", methods=["random"], n=4, spacegroups=[136, 62],
                            max_atoms=12, seed=3)
    for c in generate(req):
        assert c.spacegroup in (136, 62)
        assert c.n_atoms <= 12
        assert_sound(c, formula="MgF2")


def test_allowed_space_groups_are_honoured_by_every_method() -> None:
    req = GenerationRequest(chemsys="Cs-Pb-I", methods=list(STATIC), n=3, spacegroups=[221])
    cands = generate(req)
    assert cands and all(c.spacegroup == 221 for c in cands)


def test_same_seed_same_candidates_other_seed_other_random() -> None:
    req = GenerationRequest(chemsys="Mg-Al-O", n=6, seed=7)
    ids = [c.id for c in generate(req)]
    assert ids == [c.id for c in generate(req)]
    other = generate(req.model_copy(update={"seed": 8, "methods": ["random"]}))
    assert {c.id for c in other} != {c.id for c in generate(req.model_copy(
        update={"methods": ["random"]}))}


def test_required_and_excluded_elements() -> None:
    req = GenerationRequest(chemsys="Li-Na-Fe-O", required_elements=["Li", "O"],
                            excluded_elements=["Na"], n=6, methods=list(STATIC))
    for c in generate(req):
        els = {el.symbol for el in c.get_structure().composition.elements}
        assert {"Li", "O"} <= els and "Na" not in els


def test_duplicates_are_removed_before_returning() -> None:
    report = generate_report(GenerationRequest(composition="NaCl", methods=["substitution"],
                                               n=4))
    assert report.duplicates > 0  # many rocksalt parents give the same NaCl
    structures = [c.get_structure() for c in report.candidates]
    assert all(unique_flags(structures))
    undeduped = generate(GenerationRequest(composition="NaCl", methods=["substitution"], n=4,
                                           dedupe=False))
    assert not all(unique_flags([c.get_structure() for c in undeduped]))


def test_unique_flags_match_rotated_and_scaled_copies() -> None:
    a = rocksalt()
    b = rocksalt(5.9)
    b.apply_strain(0.01)
    c = Structure.from_spacegroup(221, Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0],
                                                                         [0.5, 0.5, 0.5]])
    assert unique_flags([a, b, c]) == [True, False, True]


def test_novelty_structure_and_composition_levels() -> None:
    index = NoveltyIndex(phases=[
        ReferencePhase(source="starter", source_id="NaCl", formula="NaCl",
                       structure=rocksalt().as_dict()),
        ReferencePhase(source="mp-e-form", source_id="KCl", formula="KCl",
                       energy_ev_per_atom=-2.2, energy_kind="formation", energy_scale="mp2020"),
    ])
    known = index.assess(rocksalt(5.5))  # rocksalt NaCl, another lattice constant
    assert not known["novel"] and not known["novel_structure"]
    assert known["matched_structure"] == "starter:NaCl"
    cscl = Structure.from_spacegroup(221, Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0],
                                                                            [0.5, 0.5, 0.5]])
    new = index.assess(cscl)  # a new structure of a composition the references know
    assert new["novel_structure"] and not new["novel_composition"] and not new["novel"]
    assert new["novelty_basis"] == "structure"
    assert novelty_label(new).startswith("known composition (starter:NaCl); structure not among "
                                         "the 1 local structure reference(s) of NaCl")
    nacl2 = index.assess(rocksalt(5.0, ("Na", "Br")))  # nothing of NaBr is known
    assert nacl2["novel"] and novelty_label(nacl2).startswith("new composition (not among the 2 ")
    kcl = index.assess(rocksalt(6.3, ("K", "Cl")))  # only a composition is known
    assert kcl["novel_structure"] and not kcl["novel_composition"] and not kcl["novel"]
    assert kcl["novelty_basis"] == "composition"


def test_exclude_known_drops_reference_structures() -> None:
    report = generate_report(GenerationRequest(composition="NaCl", methods=["prototype"], n=3,
                                               exclude_known=True))
    assert report.known >= 1  # rocksalt NaCl is in the starter library
    index = NoveltyIndex()
    assert all(index.structure_match(c.get_structure()) is None for c in report.candidates)


def test_validity_flags_overlap_charge_and_volume() -> None:
    ok, notes = check_validity(rocksalt())
    assert ok and not notes
    bad = Structure(Lattice.cubic(5.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5],
                                                           [0.52, 0.5, 0.5]])
    ok, notes = check_validity(bad)
    assert not ok
    assert any("charge balanced" in n for n in notes)
    assert any("apart" in n for n in notes)
    ok, notes = check_validity(rocksalt(15.0))
    assert not ok and any("volume" in n for n in notes)


def test_oxidation_assignments_prefer_common_states() -> None:
    assert oxidation_assignments("Fe2O3")[0] == {"Fe": 3, "O": -2}
    assert oxidation_assignments("Fe3O4") == []  # mixed valence needs two Fe states
    assert oxidation_assignments("Cu3Au") == []


def test_external_generator_plugs_in() -> None:
    def fake(request, context):
        yield rocksalt(5.6, ("K", "Cl"))         # wrong composition: rejected
        yield rocksalt(5.6, ("Na", "Cl"))
        yield Candidate.from_structure(rocksalt(5.8, ("Na", "Cl")), method="x")  # duplicate

    register_generator("fake-model", fake)
    report = generate_report(GenerationRequest(composition="NaCl", methods=["fake-model"], n=3))
    assert [c.method for c in report.candidates] == ["fake-model"]
    assert report.duplicates == 1
    assert any("not the requested" in r.reason for r in report.rejected)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"composition": "NaXx"}, "unknown element"),
    ({"chemsys": "Li-Qq-O"}, "unknown element"),
    ({"composition": "NaCl2"}, "cannot be charge balanced"),
    ({"chemsys": "Li-Fe-O", "excluded_elements": ["Fe"]}, "is excluded"),
    ({"chemsys": "Li-O", "required_elements": ["Fe"]}, "not in the chemical system"),
    ({"composition": "LiFePO4", "max_atoms": 4}, "smaller than one formula unit"),
    ({"composition": "NaCl", "required_elements": ["Na"], "excluded_elements": ["Na"]},
     "both required and excluded"),
    ({}, "either a composition or a chemical system"),
    ({"composition": "NaCl", "methods": ["mattergen9"]}, "unknown generation method"),
    ({"composition": "NaCl", "methods": ["llm"]}, "needs a chat model"),
    ({"composition": "NaCl", "spacegroups": [2], "methods": ["prototype"]}, "no candidate"),
], ids=["unknown-element", "unknown-in-chemsys", "unbalanced", "excluded-required",
        "required-outside", "max-atoms", "required-excluded", "no-target", "unknown-method",
        "llm-without-model", "empty-result"])
def test_bad_input_raises_matloop_error_with_hint(kwargs: dict, message: str) -> None:
    with pytest.raises(MatloopError) as info:
        generate(GenerationRequest(**kwargs))
    assert message in str(info.value)
    assert info.value.hint


def test_unknown_method_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="valid: prototype, aflow, substitution, random, llm"):
        generate(GenerationRequest(composition="NaCl", methods=["nope"]))
    assert issubclass(UnknownGeneratorError, GenerationError)


def test_spacegroup_out_of_range_is_rejected_by_the_request() -> None:
    with pytest.raises(ValueError, match="1-230"):
        GenerationRequest(composition="NaCl", spacegroups=[231])


@pytest.mark.slow
def test_prior_screen_keeps_compositions_the_prior_puts_within_reach() -> None:
    """A chemical-system request with prior_oversample draws more candidates and keeps those
    whose composition the MP-trained prior puts likeliest within reach of the hull; a second
    structure of a composition counts half, so a likelier composition never loses its first
    structure to a less likely one."""
    from matloop.generation.composition_prior import score_compositions
    from matloop.generation.registry import PRIOR_THRESHOLD_EV_PER_ATOM, prior_screen
    from matloop.materials.references import ReferenceStore

    store = ReferenceStore.from_settings()
    pool = generate_report(GenerationRequest(chemsys="Ba-Ti-O", methods=["prototype", "aflow"],
                                             n=24, max_atoms=12, novel_compositions_only=True),
                           store=store).candidates
    formulas = sorted({c.formula for c in pool})
    assert len(formulas) >= 3
    p = {f: s.probability_within_threshold for f, s in zip(formulas, score_compositions(
        formulas, store=store, threshold_ev_per_atom=PRIOR_THRESHOLD_EV_PER_ATOM), strict=True)}
    kept, note = prior_screen(list(pool), 6, store=store)
    assert len(kept) == 6 and f"prior screen: kept 6 of {len(pool)}" in note
    dropped = {c.formula for c in pool} - {c.formula for c in kept}
    assert all(p[d] <= min(p[c.formula] for c in kept) for d in dropped)
    assert all(c.provenance["prior_p_within_reach"] == round(p[c.formula], 4) for c in kept)
    report = generate_report(GenerationRequest(chemsys="Ba-Ti-O", methods=["prototype", "aflow"],
                                               n=6, max_atoms=12, novel_compositions_only=True,
                                               prior_oversample=4), store=store)
    assert len(report.candidates) == 6
    assert any(n.startswith(f"prior screen: kept 6 of {len(pool)}") for n in report.notes)
    assert {c.formula for c in report.candidates} == {c.formula for c in kept}
