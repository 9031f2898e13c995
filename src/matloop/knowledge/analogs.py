"""Composition similarity for synthesis analogs.

Analogs are found without the dense index: every target composition in the table is scored
against the query composition by

* element overlap: Jaccard index of the element sets;
* substitution similarity: elements present in only one of the two are paired greedily by the
  data-mined ion-substitution probability of pymatgen's ``SubstitutionProbability``
  (Hautier et al., Inorg. Chem. 50, 656 (2011)), as ``corr / (1 + corr)`` of the best pair of
  common oxidation states; unpaired elements count 0, except minor ones (dopants, under 2 % of
  the atoms), which are left out;
* stoichiometric similarity: 1 - half the L1 distance between atomic fractions, after renaming
  substituted elements to their partners (so Ba2YTaO6 is stoichiometrically identical to
  Ba2HoTaO6).

The score is a weighted sum (weights keyword-only, default 0.35 / 0.30 / 0.35).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, Field

from matloop.logs import quiet_third_party

#: The table below, precomputed from pymatgen's data (building it takes 15-60 s on a CPU);
#: rebuilt by ``python -m matloop.knowledge.analogs``.
SIMILARITY_FILE = "element_substitution_similarity.json"


@lru_cache(maxsize=1)
def element_substitution_similarity() -> dict[tuple[str, str], float]:
    """Symmetric element-pair similarity in [0, 1) from pymatgen's ion-substitution data.

    For two elements, the best ``pair_corr`` over their species (oxidation states) in the
    data-mined lambda table, mapped to ``corr / (1 + corr)``: about 0.8 for Ho/Y or Ba/Sr,
    0.73 for Li/Na, 0.08 for Ba/Ta. Read from the package's precomputed copy when present.
    """
    import json
    from importlib import resources

    try:
        raw = json.loads(resources.files("matloop.data").joinpath(SIMILARITY_FILE).read_text())
    except (FileNotFoundError, OSError):
        return compute_element_substitution_similarity()
    return {tuple(k.split("-")): float(v) for k, v in raw["pairs"].items()}  # type: ignore[misc]


def compute_element_substitution_similarity() -> dict[tuple[str, str], float]:
    """:func:`element_substitution_similarity` computed from pymatgen's lambda table."""
    from pymatgen.analysis.structure_prediction.substitution_probability import (
        SubstitutionProbability,
    )

    with quiet_third_party():
        sp = SubstitutionProbability()
        species = list(sp.species)
        best: dict[tuple[str, str], float] = {}
        for i, s1 in enumerate(species):
            e1 = s1.symbol
            for s2 in species[i + 1:]:
                e2 = s2.symbol
                if e1 == e2:
                    continue
                corr = sp.pair_corr(s1, s2)
                key = (e1, e2) if e1 < e2 else (e2, e1)
                if corr > best.get(key, 0.0):
                    best[key] = corr
    return {k: v / (1.0 + v) for k, v in best.items()}


def _sub_sim(a: str, b: str) -> float:
    if a == b:
        return 1.0
    key = (a, b) if a < b else (b, a)
    return element_substitution_similarity().get(key, 0.0)


class Similarity(BaseModel):
    """How similar a known composition is to the one asked about."""

    score: float = Field(description="Weighted similarity in [0, 1]; 1 = same composition.")
    element_overlap: float = Field(description="Jaccard index of the element sets.")
    stoichiometry_similarity: float = Field(description="1 - half the L1 distance of atomic "
                                                        "fractions, after substitution.")
    substitution_similarity: float = Field(description="Mean substitution likelihood of the "
                                                       "paired differing elements (1 = none).")
    substitutions: list[str] = Field(default_factory=list, description="Element swaps, "
                                     "written analog element -> asked element, e.g. 'Y->Ho'.")


def composition_similarity(target: dict[str, float], candidate: dict[str, float], *,
                           w_overlap: float = 0.35, w_substitution: float = 0.30,
                           w_stoichiometry: float = 0.35,
                           dopant_fraction: float = 0.02) -> Similarity:
    """Similarity of two compositions (element -> amount), see the module docstring.

    Args:
        target: Composition asked about, element -> amount.
        candidate: Known composition, element -> amount.
        w_overlap: Weight of the element-overlap term.
        w_substitution: Weight of the substitution term.
        w_stoichiometry: Weight of the stoichiometry term.
        dopant_fraction: Unpaired elements below this atomic fraction are not counted
            against the substitution term.

    """
    score, overlap, stoich, substitution, mapping = similarity(
        target, candidate, (w_overlap, w_substitution, w_stoichiometry), dopant_fraction)
    return similarity_model(score, overlap, stoich, substitution, mapping)


def similarity_model(score: float, overlap: float, stoich: float, substitution: float,
                     mapping: dict[str, str]) -> Similarity:
    """:class:`Similarity` from the parts :func:`similarity` returns."""
    return Similarity(score=round(score, 4), element_overlap=round(overlap, 4),
                      stoichiometry_similarity=round(stoich, 4),
                      substitution_similarity=round(substitution, 4),
                      substitutions=[f"{b}->{a}" for b, a in sorted(mapping.items())])


def similarity(target: dict[str, float], candidate: dict[str, float],
               weights: tuple[float, float, float], dopant_fraction: float,
               ) -> tuple[float, float, float, float, dict[str, str]]:
    """(score, overlap, stoichiometry, substitution, candidate->target element map)."""
    w_overlap, w_substitution, w_stoichiometry = weights
    et, ec = set(target), set(candidate)
    only_t, only_c = sorted(et - ec), sorted(ec - et)
    overlap = len(et & ec) / len(et | ec) if et | ec else 0.0
    pairs = sorted(((_sub_sim(a, b), a, b) for a in only_t for b in only_c), reverse=True)
    used_t: set[str] = set()
    used_c: set[str] = set()
    mapping: dict[str, str] = {}
    total = 0.0
    for sim, a, b in pairs:
        if a in used_t or b in used_c or sim <= 0:
            continue
        used_t.add(a)
        used_c.add(b)
        mapping[b] = a
        total += sim
    tn, cn = sum(target.values()), sum(candidate.values())
    # unpaired minor elements (dopants, < dopant_fraction of the atoms) are not counted
    left_c = [b for b in only_c if b not in used_c and candidate[b] / cn >= dopant_fraction]
    left_t = [a for a in only_t if a not in used_t and target[a] / tn >= dopant_fraction]
    n_diff = max(len(used_t) + len(left_t), len(used_c) + len(left_c))
    substitution = 1.0 if n_diff == 0 else total / n_diff
    mapped: dict[str, float] = {}
    for el, amt in candidate.items():
        key = mapping.get(el, el)
        mapped[key] = mapped.get(key, 0.0) + amt / cn
    l1 = sum(abs(target.get(e, 0.0) / tn - mapped.get(e, 0.0)) for e in set(mapped) | et)
    stoich = max(0.0, 1.0 - 0.5 * l1)
    score = (w_overlap * overlap + w_substitution * substitution
             + w_stoichiometry * stoich) / (w_overlap + w_substitution + w_stoichiometry)
    return score, overlap, stoich, substitution, mapping


class SynthesisAnalog(BaseModel):
    """A known synthesis of the same or a similar composition.

    Field names follow :class:`matloop.schemas.SynthesisSuggestion` where they overlap.
    """

    analog_formula: str = Field(description="Target of the known synthesis, as written.")
    canonical_formula: str = Field(description="Its canonical formula.")
    exact_match: bool = Field(description="The known target has the asked composition.")
    similarity: float = Field(description="Composition similarity in [0, 1].")
    element_overlap: float = Field(description="Jaccard index of the element sets.")
    stoichiometry_similarity: float = Field(description="Stoichiometric similarity in [0, 1].")
    substitution_similarity: float = Field(description="Substitution likelihood in [0, 1].")
    substitutions: list[str] = Field(default_factory=list, description="Element swaps, "
                                                                       "analog -> asked.")
    precursors: list[str] = Field(default_factory=list, description="Precursors used.")
    temperatures: list[str] = Field(default_factory=list, description="Step temperatures, "
                                                                      "as written.")
    max_temperature_c: float | None = Field(default=None, description="Highest heating "
                                                                      "temperature, °C.")
    times: list[str] = Field(default_factory=list, description="Step durations, as written.")
    atmosphere: list[str] = Field(default_factory=list, description="Atmospheres, as written.")
    steps: list[str] = Field(default_factory=list, description="Steps, e.g. 'calcined (900C, "
                                                               "10h, air)'.")
    synthesis_type: str = Field(default="", description="solid-state, sol-gel, ...")
    doi: str | None = Field(default=None, description="DOI of the paper.")
    recipe_id: str = Field(description="Recipe id in the data set.")
    evidence_id: str = Field(description="Evidence id of the recipe in the knowledge base.")


def main() -> None:
    """Write the precomputed element-pair table into the package data folder."""
    import json
    from importlib import resources

    from pymatgen.core import __version__ as pymatgen_version

    table = compute_element_substitution_similarity()
    payload = {
        "source": "pymatgen SubstitutionProbability (data-mined ion substitution lambda table, "
                  "G. Hautier et al., Inorg. Chem. 50, 656 (2011)); best pair_corr over the "
                  "two elements' species, as corr / (1 + corr)",
        "pymatgen": pymatgen_version,
        "build": "python -m matloop.knowledge.analogs",
        "pairs": {f"{a}-{b}": round(v, 6) for (a, b), v in sorted(table.items())},
    }
    path = resources.files("matloop.data").joinpath(SIMILARITY_FILE)
    with resources.as_file(path) as out:
        out.write_text(json.dumps(payload, indent=0) + "\n")
    print(f"wrote {len(table)} pairs")


if __name__ == "__main__":
    main()
