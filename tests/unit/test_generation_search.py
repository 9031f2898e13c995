"""Structure search beyond the 75-type list: AFLOW prototypes, held-out types, substitution
sources, random-search priors, refinement moves and metallic compounds (no MLIP)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from matloop.generation import GenerationError, GenerationRequest, generate, generate_report
from matloop.generation.aflow import aflow_library
from matloop.generation.chemistry import (
    check_validity,
    enumerate_compositions,
    grid_compositions,
    is_metallic,
)
from matloop.generation.holdout import prototype_examples, resolve_exclusions, same_structure_type
from matloop.generation.priors import build_prior, known_analogues
from matloop.generation.prototype import decorations
from matloop.generation.refine import distort, neighbour_substitutions, next_prototypes
from matloop.generation.substitution import ranked_substitutions
from matloop.generation.targets import resolve
from matloop.materials.references import starter_phases

SPINEL = "A2BC4_cF56_227_d_a_e"
CHALCOPYRITE = "ABC2_tI16_122_a_b_d"


def example(name: str) -> Structure:
    return dict(prototype_examples())[name]


def starter(formula: str) -> Structure:
    return next(p.get_structure() for p in starter_phases()
                if p.composition.reduced_formula == Composition(formula).reduced_formula)


def perovskite() -> Structure:
    return Structure.from_spacegroup(221, Lattice.cubic(3.905), ["Sr", "Ti", "O"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])


# -- AFLOW library ----------------------------------------------------------------------------

def test_aflow_library_is_pymatgens_288_labelled_prototypes() -> None:
    library = aflow_library()
    assert len(library) >= 280  # 288 entries in pymatgen's file, all ordered
    spinel = next(p for p in library if p.label == SPINEL)
    assert (spinel.strukturbericht, spinel.mineral, spinel.spacegroup) == ("H1_1", "Spinel", 227)
    assert spinel.formula == "MgAl2O4" and spinel.anonymous == "AB2C4"


def test_aflow_alone_proposes_chalcopyrite_for_cuins2() -> None:
    cands = generate(GenerationRequest(composition="CuInS2", methods=["aflow"], n=4))
    first = cands[0]
    assert {c.method for c in cands} == {"aflow"}
    assert first.provenance["aflow_label"] == CHALCOPYRITE
    assert first.provenance["strukturbericht"] == "E1_1"
    assert first.provenance["assignment"] == {"Cu": "Cu", "Fe": "In", "S": "S"}
    assert first.spacegroup == 122 and first.valid
    # It is the chalcopyrite type (same as the 75-type library's), and its cell is within 15 %
    # of experiment: a 5.52, c 11.12 Å, 16 atoms (Z = 4) -> 21.2 Å^3/atom (ICSD 66865).
    assert same_structure_type(first.get_structure(), example("chalcopyrite"))
    s = first.get_structure()
    assert s.volume / len(s) == pytest.approx(5.52**2 * 11.12 / 16, rel=0.15)


def test_aflow_alone_proposes_spinel_for_mgal2o4_with_mg_tetrahedral() -> None:
    (first, *_) = generate(GenerationRequest(composition="MgAl2O4", methods=["aflow"], n=2))
    assert first.provenance["aflow_label"] == SPINEL and first.spacegroup == 227
    s = first.get_structure()
    mg = next(i for i, site in enumerate(s) if site.specie.symbol == "Mg")
    assert len(s.get_neighbors(s[mg], 2.2)) == 4  # normal spinel: Mg on the 8a tetrahedra
    assert s.volume / len(s) == pytest.approx(8.083**3 / 56, rel=0.05)  # a = 8.083 Å


def test_aflow_assignments_caps_the_decorations_per_prototype() -> None:
    def labels(k: int) -> Counter:
        cands = generate(GenerationRequest(composition="CuInS2", methods=["aflow"], n=40,
                                           aflow_assignments=k, dedupe=False))
        return Counter(c.provenance["aflow_label"] for c in cands)

    one, three = labels(1), labels(3)
    assert max(one.values()) == 1
    # S stays on the anion site, so Cu and In can only swap: two acceptable assignments.
    assert max(three.values()) == 2
    assert set(one) == set(three)


def test_aflow_respects_max_atoms_and_space_groups() -> None:
    cands = generate(GenerationRequest(composition="CuInS2", methods=["aflow"], n=20,
                                       max_atoms=8))
    assert cands and all(c.n_atoms <= 8 for c in cands)
    only = generate(GenerationRequest(composition="CuInS2", methods=["aflow"], n=5,
                                      spacegroups=[166]))
    assert {c.spacegroup for c in only} == {166}


# -- held-out structure types -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["spinel", SPINEL, "H1_1"])
def test_a_held_out_type_goes_from_both_libraries(name: str) -> None:
    held = resolve_exclusions(prototypes=[name])
    assert "spinel" in held.prototype_names and SPINEL in held.aflow_labels


def test_held_out_prototype_never_appears() -> None:
    request = {"composition": "MgAl2O4", "methods": ["prototype", "aflow"], "n": 40}
    spinel = example("spinel")
    control = generate(GenerationRequest(**request))
    assert any(same_structure_type(c.get_structure(), spinel) for c in control)
    for how in ({"exclude_prototypes": ["spinel"]},
                {"exclude_structures": [starter("ZnAl2O4").as_dict()]}):
        cands = generate(GenerationRequest(**request, **how))
        assert cands
        assert not any(same_structure_type(c.get_structure(), spinel) for c in cands), how
        assert all(c.provenance.get("aflow_label") != SPINEL for c in cands)


def test_unknown_held_out_type_is_an_error_with_a_hint() -> None:
    with pytest.raises(GenerationError, match="unknown structure type 'nospinel'") as err:
        generate(GenerationRequest(composition="MgAl2O4", exclude_prototypes=["nospinel"]))
    assert "AFLOW label" in err.value.hint


def test_held_out_structure_and_formula_are_no_substitution_parents() -> None:
    base = {"composition": "MgAl2O4", "methods": ["substitution"], "n": 3}
    assert generate(GenerationRequest(**base))[0].provenance["parent"] == \
        "starter:Al2ZnO4:spinel"  # control: the most probable parent
    for how in ({"exclude_structures": [starter("ZnAl2O4").as_dict()]},
                {"holdout_formulas": ["ZnAl2O4"]}):
        parents = {c.provenance["parent"] for c in generate(GenerationRequest(**base, **how))}
        assert "starter:Al2ZnO4:spinel" not in parents, how


def test_strict_holdout_leaves_nothing_of_the_type_to_copy() -> None:
    request = GenerationRequest(composition="MgAl2O4", methods=["substitution"], n=10,
                                exclude_prototypes=["spinel"], holdout_strict=True)
    spinel = example("spinel")
    cands = generate(request)
    assert not any(same_structure_type(c.get_structure(), spinel) for c in cands)


# -- substitution sources ---------------------------------------------------------------------

def test_substitution_sources_choose_the_parents() -> None:
    target = resolve(GenerationRequest(chemsys="Mg-Ga-O"))
    aflow_only = ranked_substitutions(target, sources=["aflow"])
    assert aflow_only and {p.source for _, p, _, _ in aflow_only} == {"aflow"}
    store_only = ranked_substitutions(target, sources=["store"])
    assert store_only and {p.source for _, p, _, _ in store_only} == {"store"}
    everything = ranked_substitutions(target)
    assert len(everything) > len(store_only)
    probs = [p for p, *_ in everything]
    assert probs == sorted(probs, reverse=True)
    with pytest.raises(ValueError, match="unknown substitution source"):
        GenerationRequest(chemsys="Mg-Ga-O", substitution_sources=["mp"])


def test_substitution_skips_charge_balance_for_intermetallics() -> None:
    # Cr2AlC / Ti2AlC (MAX) -> Ti2AlN: no common-valence assignment exists, none is needed.
    cands = generate(GenerationRequest(composition="Ti2AlN", methods=["substitution"], n=2))
    assert cands[0].provenance["parent_formula"] in ("AlCr2C", "Ti2AlC")
    assert cands[0].valid and cands[0].provenance["oxidation_states"] == {
        "Ti": 0, "Al": 0, "N": 0}


# -- metals -----------------------------------------------------------------------------------

def test_metallic_compounds_need_no_charge_balance() -> None:
    assert is_metallic(Composition("Ti2AlN")) and is_metallic(Composition("Co2MnSi"))
    assert is_metallic(Composition("Fe3C"))
    # Not metallic: all-metal (alloy), a non-partner anion, metal-poor, no d/f-block metal.
    for formula in ("Fe2VAl", "Ti2AlO", "TiN2", "LiN", "Mg2Si"):
        assert not is_metallic(Composition(formula)), formula
    cr2alc = example("MAX_211").copy()
    cr2alc.replace_species({"Ti": "Cr"})
    assert check_validity(cr2alc)[0]  # SMACT alone rejects Cr2AlC


def test_grid_offers_heusler_max_and_laves_stoichiometries() -> None:
    assert {"VAlFe2", "AlVFe2"} & {c.reduced_formula for c in
                                   grid_compositions(["Fe", "V", "Al"], max_atoms=20)}
    ti_al_n = {c.reduced_formula for c in enumerate_compositions(["Ti", "Al", "N"],
                                                                 max_atoms=20)}
    assert {"Ti2AlN", "Ti3AlN2", "Ti4AlN3"} <= ti_al_n
    assert "MgZn2" in {c.reduced_formula for c in grid_compositions(["Mg", "Zn"], max_atoms=8)}


def test_metal_path_proposes_ti2aln_in_a_max_structure() -> None:
    target = resolve(GenerationRequest(chemsys="Ti-Al-N"))
    assert "Ti2AlN" in {c.reduced_formula for c in target.compositions()}
    max_211 = [(comp.reduced_formula, mapping) for _, index, mapping, comp, _ in
               decorations(target) if index == next(
                   i for i, (name, _) in enumerate(prototype_examples()) if name == "MAX_211")]
    assert ("Ti2AlN", {"A": "Ti", "B": "Al", "X": "N"}) in max_211
    for method in ("prototype", "aflow"):
        cands = generate(GenerationRequest(composition="Ti2AlN", methods=[method], n=1))
        assert same_structure_type(cands[0].get_structure(), example("MAX_211")), method
        assert cands[0].valid


# -- random-search prior ----------------------------------------------------------------------

def test_prior_favours_the_space_groups_of_known_analogues() -> None:
    analogues = known_analogues(None, n_elements={3})
    prior = build_prior("MgGa2O4", analogues)
    probs = prior.spacegroup_probabilities()
    assert next(iter(probs)) == 227  # spinels (ZnAl2O4, MgAl2O4...) dominate AB2C4 oxides
    rng = np.random.default_rng(0)
    groups = list(range(2, 231))
    draws = [prior.sample(rng, groups=groups, max_atoms=20, explore_fraction=0.25)
             for _ in range(400)]
    counts = Counter(d.spacegroup for d in draws)
    # Expected share of 227: 0.75 * P(227) (+ 0.25/229 uniform); uniform search: 0.4 %.
    assert counts[227] / 400 > 0.75 * probs[227] * 0.7
    assert counts[227] / 400 > 0.2
    uniform = Counter(prior.sample(rng, groups=groups, max_atoms=20, explore_fraction=1.0)
                      .spacegroup for _ in range(400))
    assert uniform[227] / 400 < 0.03
    kinds = Counter(d.prior for d in draws)
    assert kinds["uniform"] and kinds["analogue_wyckoff"] and kinds["analogue_spacegroup"]
    spinel_sites = {str(d.sites) for d in draws if d.prior == "analogue_wyckoff"
                    and d.spacegroup == 227}
    # Ga, Mg, O as in a normal spinel: 16d/8a/32e, or 16c/8b/32e after an origin shift.
    assert spinel_sites and spinel_sites <= {str([["16d"], ["8a"], ["32e"]]),
                                             str([["16c"], ["8b"], ["32e"]])}


def test_prior_without_the_held_out_type_moves_elsewhere() -> None:
    analogues = known_analogues(None, n_elements={3})
    before = build_prior("MgGa2O4", analogues).spacegroup_probabilities()[227]
    held = resolve_exclusions(prototypes=["spinel"], strict=True)
    after = build_prior("MgGa2O4", known_analogues(None, n_elements={3}, exclusions=held))
    # Only other stoichiometries in Fd-3m (pyrochlore, Fe3W3C) are left to suggest 227.
    assert after.spacegroup_probabilities().get(227, 0.0) < 0.1 * before
    assert not any(e.same_formula and e.analogue.spacegroup == 227 for e in after.entries)


def test_random_search_with_prior_records_its_draws() -> None:
    base = {"composition": "MgAl2O4", "methods": ["random"], "n": 8, "seed": 3}
    with_prior = generate(GenerationRequest(**base, random_prior=True))
    plain = generate(GenerationRequest(**base))
    assert {c.provenance["prior"] for c in plain} == {"uniform (no prior)"}
    kinds = {c.provenance["prior"] for c in with_prior}
    assert kinds & {"analogue_wyckoff", "analogue_spacegroup"}
    assert all(c.valid and c.formula == "MgAl2O4" for c in with_prior)
    known_groups = set(build_prior("MgAl2O4", known_analogues(None, n_elements={3}))
                       .spacegroup_probabilities())
    hits = sum(c.provenance["spacegroup_requested"] in known_groups for c in with_prior)
    assert hits > sum(c.provenance["spacegroup_requested"] in known_groups for c in plain)


def test_explore_fraction_one_is_uniform_search() -> None:
    cands = generate(GenerationRequest(composition="MgAl2O4", methods=["random"], n=4,
                                       random_prior=True, random_explore_fraction=1.0))
    assert {c.provenance["prior"] for c in cands} == {"uniform"}
    assert all(c.provenance["explore_fraction"] == 1.0 for c in cands)


# -- refinement moves -------------------------------------------------------------------------

def test_distort_lowers_symmetry_with_small_moves() -> None:
    cands = distort(perovskite(), n=4, seed=1)
    assert len(cands) == 4
    assert all(c.provenance["move"] == "distort" and c.formula == "SrTiO3" for c in cands)
    assert all(c.provenance["parent_spacegroup"] == 221 for c in cands)
    assert any(c.spacegroup != 221 for c in cands)
    assert len({c.id for c in cands}) == 4


def test_neighbour_substitutions_are_probable_and_balanced() -> None:
    cands = neighbour_substitutions(perovskite(), allowed_elements=["Ba", "Ca", "Zr", "La",
                                                                    "Cl"], n=5)
    formulas = [c.formula for c in cands]
    assert {"BaTiO3", "CaTiO3", "SrZrO3"} <= set(formulas)
    assert "SrTiCl3" not in formulas  # O2- -> Cl- cannot be balanced
    probs = [c.provenance["probability"] for c in cands]
    assert probs == sorted(probs, reverse=True)
    assert all(c.valid and c.provenance["move"] == "neighbour_substitution" for c in cands)


def test_next_prototypes_skip_the_tried_type_in_both_libraries() -> None:
    first = next_prototypes("SrTiO3", n=1)
    assert first[0].provenance["rank"] == 0
    tried_type = first[0].get_structure()
    nxt = next_prototypes("SrTiO3", tried=first, n=3)
    assert len(nxt) == 3
    assert not any(same_structure_type(c.get_structure(), tried_type) for c in nxt)
    ranks = [c.provenance["rank"] for c in nxt]
    assert ranks == sorted(ranks)
    by_name = next_prototypes("SrTiO3", tried=["perovskite"], n=3)
    cubic = example("perovskite")
    assert not any(same_structure_type(c.get_structure(), cubic) for c in by_name)


def test_generate_report_notes_what_was_held_out() -> None:
    report = generate_report(GenerationRequest(composition="MgAl2O4", methods=["aflow"], n=2,
                                               exclude_prototypes=["spinel"]))
    assert any("held out" in n and SPINEL in n for n in report.notes)
