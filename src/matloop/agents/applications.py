"""What an application asks of a material, in chemistry: the maps the scientist ideates from.

Each :class:`Application` names the words that call it up, the property targets it implies,
and the element pools its known good materials come from (cations or metals, anions or
non-metals), with the structure families they adopt and the reasoning. The pools are
deliberately broad: they are narrowed by the query's own constraints (required, excluded and
"one of" elements) and then ranked by the composition-level stability prior and, for a band-gap
window, by the default band-gap model at composition level
(:mod:`matloop.agents.ideation`). The maps encode textbook materials chemistry; the source of
each is the ``rationale``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from matloop.schemas import PropertyTarget


class Application(BaseModel):
    """An application's demands and where its materials are usually found."""

    name: str = Field(description="Application, e.g. photovoltaic absorber.")
    pattern: str = Field(description="Regular expression over the lower-cased query.")
    targets: list[PropertyTarget] = Field(default_factory=list,
                                          description="Property targets it implies.")
    cations: list[str] = Field(default_factory=list,
                               description="Cations or metals its materials contain, most "
                                           "typical first.")
    anions: list[str] = Field(default_factory=list,
                              description="Anions or non-metals, most typical first.")
    one_of: list[str] = Field(default_factory=list,
                              description="Every candidate must contain at least one of these "
                                          "(e.g. the mobile ion of a battery electrode).")
    structure_types: list[str] = Field(default_factory=list,
                                       description="Structure families it favours.")
    max_cations: int = Field(default=2, description="Cation species per candidate system.")
    alloys: bool = Field(default=False, description="Also search systems of the metals alone "
                         "(intermetallics and alloys, no anion), before the anion systems.")
    rationale: str = Field(description="Why these elements and targets.")


def _gap(lo: float | None, hi: float | None, why: str) -> PropertyTarget:
    return PropertyTarget(name="band_gap", unit="eV", min=lo, max=hi, source_text=why)


APPLICATIONS: list[Application] = [
    Application(
        name="infrared optoelectronics",
        pattern=r"infra-?red|\bir\s+(?:detector|photodetector|emitter|laser)|mid-?ir|"
                r"thermal\s+imaging|night\s+vision",
        targets=[_gap(0.05, 1.0, "implied by infrared detection or emission (gap below about "
                                 "1 eV)")],
        cations=["Pb", "Sn", "Hg", "Cd", "In", "Ga", "Bi", "Sb", "Ge", "Ag", "Cu", "Zn"],
        anions=["Te", "Se", "Sb", "As", "S", "P"],
        structure_types=["rocksalt", "zincblende", "wurtzite", "chalcopyrite"],
        rationale="Infrared detectors and emitters are narrow-gap semiconductors of heavy "
                  "elements: HgCdTe, InSb, InAs, PbS, PbSe, and their alloys."),
    Application(
        name="transparent conductor",
        pattern=r"transparent\s+conduct|\btco\b|transparent\s+electrode",
        targets=[_gap(3.0, None, "implied by transparency")],
        cations=["In", "Sn", "Zn", "Ga", "Cd", "Al", "Ti", "Nb", "Sr", "Ba", "Cu"],
        anions=["O", "F", "S"],
        structure_types=["rutile", "bixbyite", "wurtzite", "spinel", "delafossite",
                         "perovskite"],
        rationale="Transparent conductors are wide-gap (> 3 eV) oxides of post-transition "
                  "metals with dispersive s-like conduction bands (In2O3:Sn, SnO2, ZnO, Ga2O3), "
                  "and delafossite CuMO2 for p-type."),
    Application(
        name="UV optoelectronics",
        pattern=r"\buv\b|ultraviolet|photodetector|wide[- ]?(?:band[- ]?)?gap\s+semicond|"
                r"power\s+electronic|high[- ]power\s+(?:device|transistor)",
        targets=[_gap(3.0, None, "implied by UV detection or emission, or power electronics "
                                 "(a gap of 3 eV or more)")],
        cations=["Ga", "Al", "Zn", "Mg", "In", "B", "Si", "Sn", "Be", "Sc"],
        anions=["N", "O", "C", "S", "Se"],
        structure_types=["wurtzite", "zincblende", "rutile", "corundum", "spinel"],
        rationale="UV photodetectors, UV emitters and power devices need gaps of 3 eV or more "
                  "with good carrier mobility: III-nitrides (GaN, AlN, AlGaN), wide-gap oxides "
                  "(ZnO, Ga2O3, MgZnO, SnO2) and SiC."),
    Application(
        name="oxygen-ion conductor",
        pattern=r"\bsofcs?\b|solid\s+oxide\s+fuel|oxygen[- ]ion|oxide[- ]ion\s+conduct",
        targets=[_gap(3.0, None, "implied by use as an oxide-ion electrolyte (electronic "
                                 "insulator)")],
        cations=["Zr", "Ce", "Y", "Gd", "Sm", "Sc", "La", "Sr", "Ga", "Mg", "Bi", "Ca", "Hf"],
        anions=["O"],
        structure_types=["fluorite", "perovskite", "pyrochlore"],
        rationale="Oxide-ion electrolytes are insulating fluorites and perovskites with "
                  "aliovalent dopants that create oxygen vacancies: Y- or Sc-stabilised ZrO2, "
                  "Gd-doped CeO2, (La,Sr)(Ga,Mg)O3 and delta-Bi2O3."),
    Application(
        name="photovoltaic absorber",
        pattern=r"photovoltaic|solar\s*(?:cell|absorber|energy)|\bpv\b|absorber",
        targets=[_gap(1.1, 1.7, "implied by photovoltaic use (Shockley-Queisser optimum)")],
        cations=["Cs", "Rb", "K", "Sn", "Ge", "Pb", "Bi", "Sb", "Cu", "Ag", "In", "Ga", "Zn",
                 "Cd", "Ba", "Sr"],
        anions=["I", "Br", "Se", "Te", "S", "Cl", "P", "As", "N"],
        structure_types=["perovskite", "double_perovskite", "chalcopyrite", "kesterite",
                         "zincblende", "wurtzite"],
        rationale="Absorbers need a 1.1-1.7 eV gap: heavy soft anions (I, Br, chalcogenides, "
                  "pnictides) and cations with lone pairs or d10 shells (Sn2+, Pb2+, Bi3+, Cu+, "
                  "Ag+, In3+) narrow the gap; halide perovskites, chalcopyrites and kesterites "
                  "are the known families."),
    Application(
        name="hard material",
        pattern=r"superhard|ultra-?hard|hard\s+coating|\bhard\b|hardness|wear[- ]resistant|"
                r"abrasive|cutting\s+tool|incompressib",
        targets=[PropertyTarget(name="bulk_modulus", unit="GPa", min=200.0,
                                source_text="implied by hardness")],
        cations=["W", "Re", "Os", "Mo", "Cr", "Ti", "Zr", "Hf", "Ta", "Nb", "V", "Ru", "Ir",
                 "Al", "Si", "B"],
        anions=["B", "C", "N", "O"],
        structure_types=["rocksalt", "zincblende", "wurtzite", "AlB2", "WC", "corundum"],
        max_cations=2,
        rationale="Hardness needs short, directional covalent bonds: light B, C, N compounds "
                  "(c-BN, B4C, SiC) and transition-metal borides, carbides and nitrides with "
                  "high valence-electron density (WB4, ReB2, TiN, WC, OsB2)."),
    Application(
        name="battery cathode",
        pattern=r"cathode|positive\s+electrode|li-?ion|sodium-?ion|na-?ion|battery|"
                r"intercalation",
        cations=["Mn", "Fe", "Co", "Ni", "V", "Cr", "Ti", "Cu", "Mo"],
        anions=["O", "P", "S", "Si", "F"],
        one_of=["Li", "Na"],
        structure_types=["alpha_NaFeO2", "spinel", "olivine", "layered"],
        rationale="Intercalation cathodes hold a mobile alkali ion (Li+, Na+) and a redox-active "
                  "transition metal (Mn, Fe, Co, Ni, V) in an oxide or polyanion framework "
                  "(layered LiCoO2, spinel LiMn2O4, olivine LiFePO4)."),
    Application(
        name="battery anode",
        pattern=r"\banode\b|negative\s+electrode",
        cations=["Ti", "Nb", "Sn", "Si", "Ge", "Sb", "Mo", "V"],
        anions=["O", "S", "P", "C"],
        one_of=["Li", "Na"],
        structure_types=["spinel", "rutile"],
        rationale="Low-voltage hosts: Li4Ti5O12, Nb oxides, and alloying Si, Sn, Sb compounds."),
    Application(
        name="dielectric",
        pattern=r"dielectric|high-?k\b|high-?kappa|capacitor|ferroelectric|piezoelectric|"
                r"insulat",
        targets=[_gap(3.0, None, "implied by use as an insulator (leakage)")],
        cations=["Ti", "Zr", "Hf", "Ta", "Nb", "Ba", "Sr", "Ca", "La", "Y", "Al", "Pb", "Bi",
                 "K", "Na", "Li"],
        anions=["O", "N"],
        structure_types=["perovskite", "fluorite", "rutile", "corundum", "K2NiF4"],
        rationale="High-permittivity insulators are wide-gap oxides of d0 cations (Ti4+, Zr4+, "
                  "Hf4+, Nb5+, Ta5+) often with large A cations in perovskites (BaTiO3, "
                  "SrTiO3) or fluorites (HfO2)."),
    Application(
        name="thermoelectric",
        pattern=r"thermoelectric|seebeck|peltier|waste\s+heat",
        targets=[_gap(0.1, 0.8, "implied by thermoelectric use (narrow gap, about 6-10 kT)")],
        cations=["Bi", "Sb", "Pb", "Sn", "Ge", "Mg", "Zr", "Hf", "Ti", "Nb", "Co", "Ni", "Fe",
                 "Cu", "Ag", "Yb", "Ba", "Ca", "Zn", "In"],
        anions=["Te", "Se", "Sb", "S", "Sn", "Si", "Ge", "As", "P"],
        structure_types=["rocksalt", "half_heusler", "heusler", "zincblende"],
        rationale="Good thermoelectrics are narrow-gap (0.1-0.8 eV) semiconductors of heavy "
                  "elements with low lattice thermal conductivity: Bi2Te3, PbTe, SnSe, "
                  "half-Heuslers (TiNiSn, ZrNiSn), Zintl antimonides (Mg3Sb2, Yb14MnSb11) and "
                  "skutterudites (CoSb3)."),
    Application(
        name="permanent magnet",
        pattern=r"magnet|magnetic|ferromagnet|hard\s+magnetic",
        targets=[PropertyTarget(name="magnetic_moment", unit="bohr_per_atom", min=0.5,
                                source_text="implied by magnetic use (a net moment)")],
        cations=["Fe", "Co", "Mn", "Ni", "Cr", "Nd", "Sm", "Pr", "Dy", "Gd", "Y", "Ce", "Pt",
                 "Al", "Ga", "Zr", "Ti"],
        anions=["O", "B", "N", "Si", "C", "Ge"],
        structure_types=["heusler", "L10", "CaCu5", "Nd2Fe14B", "spinel"],
        alloys=True,
        rationale="Magnetic materials need a high-moment 3d metal (Fe, Co, Mn, Ni, Cr): "
                  "alloys and intermetallics (FeCo, L10 FeNi, FePt and MnAl, Heuslers such as "
                  "Co2MnSi), rare-earth compounds with a light interstitial for anisotropy "
                  "(Nd2Fe14B, SmCo5, Fe16N2) and oxides (spinel ferrites Fe3O4, NiFe2O4, "
                  "CoFe2O4; CrO2)."),
    Application(
        name="photocatalyst",
        pattern=r"photocataly|water\s+splitting|solar\s+fuel",
        targets=[_gap(1.8, 3.2, "implied by visible-light photocatalysis")],
        cations=["Ti", "Nb", "Ta", "W", "Bi", "V", "Fe", "Zn", "Ga", "In", "Sr", "Ba", "La",
                 "Ag", "Cu"],
        anions=["O", "N", "S"],
        structure_types=["perovskite", "scheelite", "wurtzite", "spinel"],
        rationale="Water-splitting photocatalysts need a 1.8-3.2 eV gap straddling the redox "
                  "levels: d0 and d10 oxides, (oxy)nitrides and sulfides (TiO2, BiVO4, "
                  "TaON, GaN:ZnO, CdS)."),
    Application(
        name="light emitter",
        pattern=r"\bled\b|light[- ]emitting|phosphor|luminesc",
        targets=[_gap(1.8, 3.5, "implied by visible light emission")],
        cations=["Ga", "In", "Al", "Zn", "Cd", "Cs", "Pb", "Sr", "Ba", "Ca"],
        anions=["N", "P", "As", "Se", "S", "Br", "Cl", "O"],
        structure_types=["wurtzite", "zincblende", "perovskite"],
        rationale="Visible emitters are direct-gap semiconductors with 1.8-3.5 eV gaps: "
                  "III-nitrides and phosphides, II-VI chalcogenides, halide perovskites."),
    Application(
        name="solid electrolyte",
        pattern=r"solid[- ]state\s+electrolyte|solid\s+electrolyte|ionic\s+conduct|"
                r"superionic",
        targets=[_gap(3.0, None, "implied by use as an electrolyte (electronic insulator)")],
        cations=["P", "Ge", "Si", "Sn", "La", "Zr", "Al", "Ga", "Ti", "Y", "In", "Sc"],
        anions=["S", "O", "Cl", "Br", "I", "N"],
        one_of=["Li", "Na"],
        structure_types=["garnet", "NASICON", "argyrodite"],
        rationale="Fast Li+/Na+ conductors that are electronic insulators: sulfides "
                  "(Li10GeP2S12, argyrodites), garnets (Li7La3Zr2O12) and halides (Li3YCl6)."),
]


def application_for(query: str) -> Application | None:
    """The first application whose words appear in the query, or None."""
    lowered = query.lower()
    for app in APPLICATIONS:
        if re.search(app.pattern, lowered):
            return app
    return None


def by_name(name: str) -> Application | None:
    """An application by its name."""
    return next((a for a in APPLICATIONS if a.name == name), None)
