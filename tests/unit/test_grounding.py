"""The grounding checker: figures, DOIs and evidence ids in narrative text against the run."""

from __future__ import annotations

import pytest

from matloop.reports.grounding import (
    KnownFacts,
    check_items,
    check_text,
    extract_dois,
    extract_evidence_ids,
    extract_numbers,
    number_grounded,
    numbers_in,
    split_sentences,
)

# Values from a real Ba-Ti-O run (tests/data/report_run): E_hull and E_form of Ba2TiO4.
E_HULL = -0.04915605272565582
E_FORM = -3.4243976729256764
FACTS = KnownFacts(numbers=[E_HULL, E_FORM, 0.1, 20.0, 11.0, 1100.0, 0.125],
                   dois={"10.1016/j.jssc.2017.03.026"}, evidence_ids={"ev-def2dbac8e3f6d95"})


def values(text: str) -> list[float]:
    return [c.value for c in extract_numbers(text)]


@pytest.mark.parametrize("text, expected", [
    ("lies -0.049 eV/atom above", [-0.049]),
    ("formation energy \u22123.42 eV/atom", [-3.42]),  # Unicode minus
    ("band gap 1.2-1.6 eV", [1.2, 1.6]),  # a range, not a negative number
    ("1.2e-3 and 3.0 x 10^-4", [0.0012, 0.0003]),
    ("1,200 K", [1200.0]),
    ("12.5% of them", [12.5]),
    ("sintered at 1100C", [1100.0]),  # a figure with its unit attached
    ("published in 2019", [2019.0]),  # years are figures too
], ids=["negative", "unicode-minus", "range", "scientific", "thousands", "percent",
        "unit-attached", "year"])
def test_figures_are_read_with_sign_and_precision(text: str, expected: list[float]) -> None:
    assert values(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", [
    "candidate C0012 tests H1 in step S2 (record T0-01)",
    "BaTiO3 and Ba2TiO4 in Pm-3m, I4/mmm and P6_3/mmc",
    "prot-1c275c287fcb and subs-e911fd46306a",
    "see ev-def2dbac8e3f6d95 and doi:10.1016/s0272-8842(98)00034-0",
], ids=["ids", "formulas-space-groups", "candidate-ids", "citations"])
def test_names_with_digits_are_not_figures(text: str) -> None:
    assert extract_numbers(text) == []


def test_precision_decides_the_match() -> None:
    [written] = extract_numbers("-0.049")
    assert number_grounded(written, [E_HULL])  # -0.04916 rounds to -0.049
    [written] = extract_numbers("-0.0492")
    assert number_grounded(written, [E_HULL])
    [written] = extract_numbers("-0.048")
    assert not number_grounded(written, [E_HULL])
    [written] = extract_numbers("1.2")
    assert number_grounded(written, [1.23])  # 1.23 rounds to 1.2 at one decimal
    assert not number_grounded(written, [1.26])  # 1.26 rounds to 1.3
    [written] = extract_numbers("1.20")
    assert not number_grounded(written, [1.23])  # two decimals written: 1.23 is not 1.20


def test_sign_must_match_when_written() -> None:
    [signed] = extract_numbers("+0.049")
    assert not number_grounded(signed, [E_HULL])
    [unsigned] = extract_numbers("0.049 eV/atom below the hull")
    assert number_grounded(unsigned, [E_HULL])


def test_mev_and_percent_conversions() -> None:
    [mev] = extract_numbers("49 meV/atom below the hull")
    assert number_grounded(mev, [E_HULL])
    [pct] = extract_numbers("12.5% of the candidates")
    assert number_grounded(pct, [0.125])
    [other] = extract_numbers("14% of the candidates")
    assert not number_grounded(other, [0.125])


def test_citations_are_extracted() -> None:
    text = ("As in ev-def2dbac8e3f6d95 (doi:10.1016/j.jssc.2017.03.026), see "
            "https://doi.org/10.9999/fake.2024.001.")
    assert extract_dois(text) == ["10.1016/j.jssc.2017.03.026", "10.9999/fake.2024.001"]
    assert extract_evidence_ids(text) == ["ev-def2dbac8e3f6d95"]


def test_numbers_in_reads_nested_values_and_strings() -> None:
    found = numbers_in({"a": [1, {"b": -0.5}], "t": ["1100C", "1450/1300C"], "sg": "139",
                        "flag": True, "none": None})
    assert sorted(found) == [-0.5, 1.0, 139.0, 1100.0, 1300.0, 1450.0]


def test_sentences_split_without_breaking_decimals() -> None:
    assert split_sentences("E is -0.049 eV/atom. Next, relax it! Done?") == [
        "E is -0.049 eV/atom.", "Next, relax it!", "Done?"]


def test_invented_number_and_doi_are_removed_and_listed() -> None:
    text = ("Ba2TiO4 lies 0.049 eV/atom below the hull with formation energy -3.424 eV/atom. "
            "Its band gap is 3.87 eV. It was made before (doi:10.9999/invented.42). "
            "A route at 1100C is known (ev-def2dbac8e3f6d95, doi:10.1016/j.jssc.2017.03.026).")
    kept, removed = check_text(text, FACTS, part="summary")
    assert kept == ("Ba2TiO4 lies 0.049 eV/atom below the hull with formation energy -3.424 "
                    "eV/atom. A route at 1100C is known (ev-def2dbac8e3f6d95, "
                    "doi:10.1016/j.jssc.2017.03.026).")
    assert [r.text for r in removed] == ["Its band gap is 3.87 eV.",
                                         "It was made before (doi:10.9999/invented.42)."]
    assert "number 3.87" in removed[0].reason
    assert "DOI 10.9999/invented.42" in removed[1].reason
    assert all(r.part == "summary" for r in removed)


def test_unknown_evidence_id_is_removed() -> None:
    _, removed = check_text("Supported by ev-0000aaaa1111bbbb.", FACTS, part="discussion")
    assert "ev-0000aaaa1111bbbb" in removed[0].reason


def test_mark_mode_keeps_the_sentence_visibly_marked() -> None:
    kept, removed = check_text("It has 7 polymorphs.", FACTS, part="summary", mode="mark")
    assert kept == "[unverified: It has 7 polymorphs.]" and len(removed) == 1


def test_list_items_are_checked_whole() -> None:
    kept, removed = check_items(["Relax the 20 candidates with DFT", "Measure 42 samples"],
                                FACTS, part="next_steps")
    assert kept == ["Relax the 20 candidates with DFT"]
    assert removed[0].text == "Measure 42 samples"


def test_shortened_snippets_never_split_a_number() -> None:
    from matloop.reports import shorten

    text = "The sample was annealed at 1273 K and the lattice constant a = 7.988 Å was measured"
    cut = shorten(text, 67)  # a plain cut would end in "7.98"
    assert cut.endswith(" …") and "7.98 " not in cut + " " and len(cut) <= 69
    assert all(tok in text.split() for tok in cut[:-2].split())
    assert shorten("short  text", 50) == "short text"
