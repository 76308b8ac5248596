"""CIF reading: the shared tutorial / pdCIF files (against their metadata and pymatgen), and synthetic cases for
symmetry expansion, special positions, displacement parameters, blocks and round trips."""

import csv
import gzip
import math
import warnings
from collections import Counter

import numpy as np
import pytest

from powdersym.structures import StructureError, read_structure, write_cif
from powdersym.structures.readers import SAME_POSITION_A, read_cif

MEASURED = ("gsas2_tutorials", "easydiffraction", "iucr_pdcif_cdvae_xrd")

# Every CIF in the shared measured folders: the space-group number it must load with, or why it is refused.
EXPECTED = {
    "easydiffraction/EasyDiffractionApp/easyDiffractionApp/Gui/Resources/Examples/CeCuAl3/samples/CeCuAl.cif": 107,
    "easydiffraction/EasyDiffractionApp/easyDiffractionApp/Gui/Resources/Examples/Dy3Al5O12/samples/Dy3Al5O12.cif": 230,
    "easydiffraction/EasyDiffractionApp/easyDiffractionApp/Gui/Resources/Examples/Si3N4/samples/Si3N4_alpha.cif": 159,
    "easydiffraction/EasyDiffractionApp/easyDiffractionApp/Gui/Resources/Examples/Si3N4/samples/Si3N4_beta.cif": 176,
    "easydiffraction/EasyDiffractionApp/examples/PdTof1d/Na2Ca3Al2F14/samples/Na2Ca3Al2F14.cif": 199,
    "easydiffraction/diffraction-lib_validators-branch/tutorials/data/lbco.cif": 221,  # DDLm tags, no gamma
    "gsas2_tutorials/files/MDtutorials/k_vec_tutorial/data/ErGeO_distbase.cif": 92,
    "gsas2_tutorials/files/Magnetic-I/data/LaCaMnO3.cif": 62,
    "gsas2_tutorials/files/Magnetic-I/data/LaMnO3.cif": 62,
    "gsas2_tutorials/files/Magnetic-II/data/Cr2WO6.cif": 136,
    "gsas2_tutorials/files/Magnetic-III/data/Ba6Co6.cif": 187,  # symop list repeated twice, bogus Hall symbol
    "gsas2_tutorials/files/Magnetic-IV/data/PrSrMnO.cif": 69,
    "gsas2_tutorials/files/Magnetic-V/data/Mn3O4-Hausmannite.cif": 141,
    "gsas2_tutorials/files/TOF-CW Joint Refinement/data/CaF2.cif": 225,  # impurity phase of the NAC rows
    "gsas2_tutorials/files/TOF-CW Joint Refinement/data/NAC.cif": 199,
    "gsas2_tutorials/files_gsas2_main/Exercises/kryptonite/jadarite.cif": 14,
    "iucr_pdcif_cdvae_xrd/av5088sup4.rtv.combined.cif": 7,  # two phases: Pn first, Pca21 as block=1
    "iucr_pdcif_cdvae_xrd/br1322Isup2.rtv.combined.cif": 186,
    "iucr_pdcif_cdvae_xrd/br1340Isup2.rtv.combined.cif": 11,
    "iucr_pdcif_cdvae_xrd/ck5030Vsup6.rtv.combined.cif": "incommensurately modulated",  # superspace group only
    "iucr_pdcif_cdvae_xrd/gw5052Mg2Si_100K_LTsup2.rtv.combined.cif": 225,
    "iucr_pdcif_cdvae_xrd/gw5052Mg2Sn_100K_LTsup23.rtv.combined.cif": 225,
    "iucr_pdcif_cdvae_xrd/iz1026Isup2.rtv.combined.cif": 14,
    "iucr_pdcif_cdvae_xrd/ks5409BTsup2.rtv.combined.cif": 99,
    "iucr_pdcif_cdvae_xrd/sh0123Xraysup5.rtv.combined.cif": 14,
    "iucr_pdcif_cdvae_xrd/sq1033Isup2.rtv.combined.cif": 62,
    "iucr_pdcif_cdvae_xrd/sq3214Isup2.rtv.combined.cif": 62,
    "iucr_pdcif_cdvae_xrd/wh5012phaseIIIsup3.rtv.combined.cif": 194,
    "iucr_pdcif_cdvae_xrd/wh5012phaseIIsup2.rtv.combined.cif": 62,
    "iucr_pdcif_cdvae_xrd/wm2446Isup2.rtv.combined.cif": 129,
    "iucr_pdcif_cdvae_xrd/wn6225Isup2.rtv.combined.cif": 187,
}


@pytest.fixture(scope="module")
def measured(shared_data):
    root = shared_data / "measured"
    if not all((root / folder / "metadata.csv").is_file() for folder in MEASURED):
        pytest.skip(f"measured data sets with CIFs missing under {root}")
    return root


def test_expectations_cover_every_shared_cif_and_agree_with_metadata(measured):
    files = [p for folder in MEASURED for p in (measured / folder).rglob("*") if p.suffix.lower() in {".cif", ".mcif"}]
    found = {str(p.relative_to(measured)) for p in files}
    assert found == set(EXPECTED)
    # metadata.csv: the first CIF of a row is the row's main phase and carries its sg_number ('7+29' -> 7).
    checked = 0
    for folder in MEASURED:
        with open(measured / folder / "metadata.csv", newline="") as stream:
            for row in csv.DictReader(stream):
                cifs = [f for f in row["files"].split(";") if f.lower().endswith(".cif")]
                if cifs and row["sg_number"]:
                    assert EXPECTED[f"{folder}/{cifs[0]}"] == int(row["sg_number"].split("+")[0]), row["id"]
                    checked += 1
    assert checked >= 20


def _pymatgen_reference(path, index: int):
    """pymatgen's structure of the index-th phase, or None when pymatgen cannot read the file."""
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return CifParser(path).parse_structures(primitive=False)[index]
        except (ValueError, IndexError):
            return None


def _assert_same_as_pymatgen(crystal, structure, where: str):
    """Same atom count, composition, lattice (1e-4) and coordinates as sets mod 1 (1e-4) as pymatgen's Structure."""
    atoms = [(getattr(sp, "element", sp).name, site.frac_coords, occ) for site in structure for sp, occ in site.species.items()]
    assert crystal.n_atoms == len(atoms), where
    ours, theirs = Counter(), Counter()
    for symbol, occ in zip(crystal.species, crystal.occupancy):
        ours[symbol] += occ
    for symbol, _, occ in atoms:
        theirs[symbol] += occ
    assert set(ours) == set(theirs) and all(math.isclose(ours[k], theirs[k], abs_tol=1e-6) for k in ours), where
    parameters = [*structure.lattice.abc, *structure.lattice.angles]
    np.testing.assert_allclose(crystal.lattice, parameters, atol=1e-4, err_msg=where)
    unmatched = list(range(len(atoms)))
    for symbol, xyz in zip(crystal.species, crystal.frac_coords):
        for j in unmatched:
            delta = xyz - atoms[j][1]
            if atoms[j][0] == symbol and np.all(np.abs(delta - np.round(delta)) < 1e-4):
                unmatched.remove(j)
                break
        else:
            raise AssertionError(f"{where}: {symbol} at {xyz} has no counterpart in pymatgen's structure")


def test_shared_cifs_load_or_are_refused_with_reason(measured):
    compared = 0
    for relative, expected in EXPECTED.items():
        path = measured / relative
        if isinstance(expected, str):
            with pytest.raises(StructureError, match=expected) as err:
                read_structure(path)
            assert "\n" not in str(err.value) and str(path) in str(err.value)
            continue
        crystal = read_structure(path)
        assert crystal.space_group == expected, relative
        assert crystal.metadata["source"] == str(path) and crystal.name == crystal.metadata["block"]
        reference = _pymatgen_reference(path, 0)
        if reference is not None:
            _assert_same_as_pymatgen(crystal, reference, relative)
            compared += 1
    assert compared == len(EXPECTED) - 2  # all but lbco.cif (pymatgen reads no DDLm atom loop) and the refused one


def test_two_phase_pdcif_blocks(measured):
    path = measured / "iucr_pdcif_cdvae_xrd/av5088sup4.rtv.combined.cif"
    first = read_structure(path)
    second = read_structure(path, block=1)
    by_name = read_structure(path, block="C4Br4S2G_phase_2")
    assert (first.space_group, second.space_group, by_name.space_group) == (7, 29, 29)
    assert first.metadata["n_phases"] == 2 and first.metadata["phase_blocks"] == ["C4Br4S2G_phase_1", "C4Br4S2G_phase_2"]
    _assert_same_as_pymatgen(second, _pymatgen_reference(path, 1), "phase 2")
    with pytest.raises(StructureError, match="no atom sites"):
        read_structure(path, block="C4Br4S2G_phase_1_simulated_")
    with pytest.raises(StructureError, match="out of range"):
        read_structure(path, block=2)


def test_ddlm_tags_and_default_angle(measured):
    crystal = read_structure(measured / "easydiffraction/diffraction-lib_validators-branch/tutorials/data/lbco.cif")
    np.testing.assert_allclose(crystal.lattice, [3.88, 3.88, 3.88, 90, 90, 90])
    assert crystal.species == ["La", "Ba", "Co", "O", "O", "O"]
    np.testing.assert_allclose(crystal.occupancy, [0.5, 0.5, 1, 1, 1, 1])
    np.testing.assert_allclose(crystal.b_iso, 0.5)


# ---------------------------------------------------------------------------------------------------------------------
# Synthetic CIFs

CELL_TAGS = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
SITES = "loop_\n" + "".join(
    f"_atom_site_{item}\n" for item in ("label", "type_symbol", "fract_x", "fract_y", "fract_z", "occupancy")
)


def _hm(symbol: str) -> str:
    return f"_symmetry_space_group_name_H-M '{symbol}'\n"


def _cif(tmp_path, body: str, name: str = "test.cif", cell=(10, 10, 10, 90, 90, 90), symmetry: str = _hm("P 1")):
    path = tmp_path / name
    cell_lines = "".join(f"_cell_{tag} {value}\n" for tag, value in zip(CELL_TAGS, cell))
    path.write_text(f"data_test\n{cell_lines}{symmetry}{body}")
    return path


def test_rock_salt_from_hm_symbol(tmp_path):
    path = _cif(tmp_path, SITES + "Na1 Na 0 0 0 1\nCl1 Cl 0.5 0.5 0.5 1\n", cell=(5.64, 5.64, 5.64, 90, 90, 90),
                symmetry=_hm("F m -3 m"))  # fmt: skip
    crystal = read_structure(path)
    assert crystal.n_atoms == 8 and crystal.formula() == "Cl4Na4" and crystal.space_group == 225
    assert np.all((crystal.frac_coords >= 0) & (crystal.frac_coords < 1))


def test_rounded_special_positions_merge(tmp_path):
    """2c/2d of P63/mmc written as 0.333/0.667 (full site) or 0.6667/0.3333 (half site): images 0.003 Å apart, 2 atoms."""
    sites = SITES + "Mg1 Mg 0.333 0.667 0.25 1\nLi1 Li 0.6667 0.3333 0.75 0.5\n"
    crystal = read_structure(_cif(tmp_path, sites, cell=(3.2, 3.2, 5.2, 90, 90, 120), symmetry=_hm("P 63/m m c")))
    assert crystal.species.count("Mg") == 2 and crystal.species.count("Li") == 2
    assert crystal.space_group == 194


def test_split_site_near_inversion_centre(tmp_path):
    """An atom 0.15 Å off a centre of symmetry with occupancy 0.5 is a split site: two half atoms (one atom in all);
    with occupancy 1 the two images cannot both be there: one atom. The CIF multiplicity, when given, decides."""
    p1bar = _hm("P -1")
    split = read_structure(_cif(tmp_path, SITES + "O1 O 0.015 0 0 0.5\n", symmetry=p1bar))
    assert split.n_atoms == 2 and math.isclose(split.occupancy.sum(), 1.0)
    full = read_structure(_cif(tmp_path, SITES + "O1 O 0.015 0 0 1\n", symmetry=p1bar))
    assert full.n_atoms == 1
    near = read_structure(_cif(tmp_path, SITES + f"O1 O {SAME_POSITION_A / 40} 0 0 0.5\n", symmetry=p1bar))
    assert near.n_atoms == 1  # images SAME_POSITION_A / 2 apart are one position
    with_multiplicity = SITES.replace("_atom_site_occupancy\n", "_atom_site_occupancy\n_atom_site_symmetry_multiplicity\n")
    assert read_structure(_cif(tmp_path, with_multiplicity + "O1 O 0.015 0 0 0.5 1\n", symmetry=p1bar)).n_atoms == 1


def test_symops_take_priority_and_duplicates_are_dropped(tmp_path):
    """The symop list defines the frame: here P-1 with the inversion centre at (1/4, 0, 0), listed twice; the H-M
    symbol 'P 1' disagrees and is ignored. gemmi has no table entry for this origin: spglib names the group."""
    symmetry = _hm("P 1") + "loop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n-x+1/2,-y,-z\nx,y,z\n'-x+1/2, -y, -z'\n"
    crystal = read_structure(_cif(tmp_path, SITES + "Fe1 Fe 0.1 0.2 0.3 1\n", symmetry=symmetry))
    assert crystal.n_atoms == 2 and crystal.space_group == 2
    np.testing.assert_allclose(crystal.frac_coords[1], [0.4, 0.8, 0.7], atol=1e-12)


def test_incomplete_symops_fall_back_to_symbol(tmp_path):
    symmetry = _hm("P 21/c") + "loop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n-x,y+1/2,-z+1/2\n-x,-y,-z\n"
    crystal = read_structure(_cif(tmp_path, SITES + "Fe1 Fe 0.1 0.2 0.3 1\n", symmetry=symmetry))
    assert crystal.n_atoms == 4 and crystal.space_group == 14 and crystal.metadata["notes"]
    with pytest.raises(StructureError, match="do not form a group"):
        read_structure(_cif(tmp_path, SITES + "Fe1 Fe 0.1 0.2 0.3 1\n", symmetry=symmetry.split("\n", 1)[1]))


def test_symbols_hall_number_and_origin_suffix(tmp_path):
    """Diamond-type Si: origin choice 2 (Hall '-F 4vw 2vw 3', ICSD suffix 'Z') puts Si at 1/8; the bare H-M symbol
    and the bare number mean the standard setting, origin choice 1, with Si at 0."""
    cubic = (5.43, 5.43, 5.43, 90, 90, 90)
    cases = {
        "_space_group_name_Hall '-F 4vw 2vw 3'\n": "0.125 0.125 0.125",
        "_symmetry_space_group_name_H-M 'F d -3 m Z'\n": "0.125 0.125 0.125",
        "_symmetry_space_group_name_H-M 'F d -3 m'\n": "0 0 0",
        "_space_group_IT_number 227\n": "0 0 0",
    }
    for symmetry, xyz in cases.items():
        crystal = read_structure(_cif(tmp_path, SITES + f"Si1 Si {xyz} 1\n", cell=cubic, symmetry=symmetry))
        assert crystal.n_atoms == 8 and crystal.space_group == 227, symmetry


def test_no_symmetry_means_p1(tmp_path):
    crystal = read_structure(_cif(tmp_path, SITES + "Fe1 Fe 0.1 0.2 0.3 1\n", symmetry=""))
    assert crystal.n_atoms == 1 and crystal.space_group is None and "P1 assumed" in crystal.metadata["symmetry_from"]


def test_displacement_parameters(tmp_path):
    """B from B_iso, from U_iso x 8 pi^2, and from U_ij: an isotropic tensor written in CIF U_ij form for a
    monoclinic cell (U_13 = U cos beta*) must give U_eq = U (Fischer & Tillmanns 1988)."""
    u, beta = 0.02, 110.0
    beta_star = 180.0 - beta
    body = (
        "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        "_atom_site_B_iso_or_equiv\n_atom_site_U_iso_or_equiv\n"
        "Fe1 0.1 0.1 0.1 1.5 ?\nO1 0.2 0.2 0.2 ? 0.01(2)\nSi1 0.3 0.3 0.3 ? ?\nS1 0.4 0.4 0.4 ? ?\n"
        "loop_\n_atom_site_aniso_label\n_atom_site_aniso_U_11\n_atom_site_aniso_U_22\n_atom_site_aniso_U_33\n"
        "_atom_site_aniso_U_12\n_atom_site_aniso_U_13\n_atom_site_aniso_U_23\n"
        f"Si1 {u} {u} {u} 0 {u * math.cos(math.radians(beta_star))} 0\n"
    )
    crystal = read_structure(_cif(tmp_path, body, cell=(5, 6, 7, 90, beta, 90)))
    assert crystal.species == ["Fe", "O", "Si", "S"]
    np.testing.assert_allclose(crystal.b_iso, [1.5, 8 * math.pi**2 * 0.01, 8 * math.pi**2 * u, 0.0], rtol=1e-9)
    assert "no displacement parameters for S1: B = 0" in crystal.metadata["notes"]


def test_species_from_labels_and_ionic_type_symbols(tmp_path):
    body = "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
    body += "Fe3+ 0 0 0\nO2- 0.5 0 0\nSi1 0 0.5 0\nD1 0 0 0.5\n"
    assert read_structure(_cif(tmp_path, body)).species == ["Fe", "O", "Si", "D"]


def test_magnetic_superspace_and_mcif_refused(tmp_path):
    site = SITES + "Fe1 Fe 0 0 0 1\n"
    magnetic = "_space_group_magn.name_BNS 'P 1'\nloop_\n_space_group_symop_magn_operation.xyz\nx,y,z,+1\n"
    with pytest.raises(StructureError, match="magnetic"):
        read_structure(_cif(tmp_path, site, symmetry=magnetic))
    with pytest.raises(StructureError, match=r"\.mcif"):
        read_structure(_cif(tmp_path, site, name="test.mcif"))
    with pytest.raises(StructureError, match="incommensurately"):
        read_structure(_cif(tmp_path, site + "_cell_wave_vector_x 0.3\n"))


def test_write_cif_round_trip(tmp_path):
    path = _cif(tmp_path, SITES.replace("_atom_site_occupancy\n", "_atom_site_occupancy\n_atom_site_B_iso_or_equiv\n")
                + "La1 La 0 0 0 0.5 0.4\nBa1 Ba 0 0 0 0.5 0.4\nCo1 Co 0.5 0.5 0.5 1 0.3\nO1 O 0 0.5 0.5 1 0.7\n",
                cell=(3.88, 3.88, 3.88, 90, 90, 90), symmetry=_hm("P m -3 m"))  # fmt: skip
    original = read_structure(path)
    written = tmp_path / "out" / "p1.cif"
    written.parent.mkdir()
    write_cif(original, written)
    assert [p.name for p in written.parent.iterdir()] == ["p1.cif"]  # no temporary left behind
    copy = read_structure(written)
    assert copy.space_group == 1 and copy.species == original.species
    for name in ("lattice", "frac_coords", "occupancy", "b_iso"):
        np.testing.assert_allclose(getattr(copy, name), getattr(original, name), atol=1e-6)


def test_duplicate_tags_tolerated(tmp_path):
    """Database CIFs (AMCSD) repeat harmless tags; gemmi's strict check would refuse them."""
    repeated = "_chemical_formula_sum 'Fe'\n_chemical_formula_sum 'Fe'\n"
    crystal = read_structure(_cif(tmp_path, repeated + SITES + "Fe1 Fe 0 0 0 1\n"))
    assert crystal.n_atoms == 1 and any("duplicate tag" in note for note in crystal.metadata["notes"])


def test_latin1_and_gzip(tmp_path):
    text = _cif(tmp_path, SITES + "Fe1 Fe 0 0 0 1\n").read_text() + "_publ_author_name 'Müller, Å.'\n"
    latin = tmp_path / "latin.cif"
    latin.write_bytes(text.encode("latin-1"))
    assert read_structure(latin).n_atoms == 1
    packed = tmp_path / "packed.cif.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    assert read_cif(packed).n_atoms == 1 and read_structure(packed).n_atoms == 1
