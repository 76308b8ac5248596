"""Bad inputs: every failure is a one-line StructureError / UnknownElementError naming the file, never a raw
gemmi, numpy or decoding exception."""

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powdersym.structures import StructureError, UnknownElementError, read_structure

GOOD_CIF = (Path(__file__).resolve().parents[1] / "data" / "rocksalt.cif").read_text()

GOOD_POSCAR = """NaCl
1.0
5.64 0 0
0 5.64 0
0 0 5.64
Na Cl
1 1
Direct
0 0 0
0.5 0.5 0.5
"""

def _cif_with(old: str, new: str) -> bytes:
    assert old in GOOD_CIF
    return GOOD_CIF.replace(old, new).encode()


def _poscar_with(old: str, new: str) -> bytes:
    assert old in GOOD_POSCAR
    return GOOD_POSCAR.replace(old, new).encode()


NO_CELL = "\n".join(line for line in GOOD_CIF.splitlines() if "_cell_length" not in line).encode()
BAD_SYMOP = _cif_with("loop_", "loop_\n_symmetry_equiv_pos_as_xyz\nx,y\nloop_")

# case: (file name, content, error class, fragment of the message)
BAD_INPUTS = {
    "empty": ("empty.cif", b"", StructureError, "empty file"),
    "blank": ("blank.cif", b"  \n\n \n", StructureError, "empty file"),
    "binary": ("binary.cif", bytes(range(256)) * 4, StructureError, "binary"),
    "broken loop": ("loop.cif", _cif_with("Cl1 Cl 0.5 0.5 0.5 0.01", "Cl1 Cl 0.5 0.5"), StructureError, "malformed CIF"),
    "no data block": ("nodata.cif", b"_cell_length_a 5\n", StructureError, "malformed CIF"),
    "no cell": ("nocell.cif", NO_CELL, StructureError, "no unit cell"),
    "zero volume": ("flat.cif", _cif_with(" 90\n", " 120\n"), StructureError, "zero-volume"),
    "no atom sites": ("noatoms.cif", GOOD_CIF.split("loop_")[0].encode(), StructureError, "no atom sites"),
    "unknown element": ("xx.cif", _cif_with("Cl1 Cl", "Xx1 Xx"), UnknownElementError, "'Xx'"),
    "unknown space group": ("p7.cif", _cif_with("F m -3 m", "P 7"), StructureError, "unknown space-group symbol 'P 7'"),
    "bad symop": ("symop.cif", BAD_SYMOP, StructureError, "symmetry operation"),
    "text coordinates": ("xyz.cif", _cif_with("Na1 Na 0 0 0", "Na1 Na abc 0 0"), StructureError, "fractional coordinates"),
    "short POSCAR": ("POSCAR", b"NaCl\n1.0\n5.64 0 0\n0 5.64 0\n", StructureError, "too short"),
    "POSCAR missing sites": ("CONTCAR", _poscar_with("1 1", "1 2"), StructureError, "atom positions"),
    "POSCAR zero cell": ("POSCAR", _poscar_with("0 0 5.64", "0 0 0"), StructureError, "zero-volume"),
    "POSCAR unknown species": ("POSCAR", _poscar_with("Na Cl", "Na Qq"), UnknownElementError, "'Qq'"),
    "not a structure": ("notes.txt", b"hello\nworld\n", StructureError, "unrecognised format"),
    "gzip garbage": ("broken.cif.gz", b"\x1f\x8b\x08\x00garbage", StructureError, "gzip"),
}


def _assert_one_line_naming(err: Exception, path) -> None:
    message = str(err)
    assert "\n" not in message and "\r" not in message
    assert str(path) in message


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_raises_one_line_error(tmp_path, case):
    name, content, error, fragment = BAD_INPUTS[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error) as caught:
        read_structure(path)
    assert type(caught.value) is error  # not a raw ValueError from gemmi or numpy
    assert fragment in str(caught.value)
    _assert_one_line_naming(caught.value, path)


def test_missing_file_and_directory(tmp_path):
    for path in (tmp_path / "absent.cif", tmp_path / "POSCAR", tmp_path):
        with pytest.raises(StructureError) as caught:
            read_structure(path)
        _assert_one_line_naming(caught.value, path)


def test_good_inputs_read(tmp_path):
    (tmp_path / "good.cif").write_text(GOOD_CIF)
    (tmp_path / "POSCAR").write_text(GOOD_POSCAR)
    assert read_structure(tmp_path / "good.cif").n_atoms == 8
    assert read_structure(tmp_path / "POSCAR").n_atoms == 2


def _read_or_refuse(path) -> None:
    try:
        read_structure(path)
    except (StructureError, UnknownElementError) as err:
        _assert_one_line_naming(err, path)


FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(content=st.binary(max_size=400), name=st.sampled_from(["fuzz.cif", "POSCAR", "fuzz.dat"]))
def test_fuzz_random_bytes(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    _read_or_refuse(path)


@FUZZ
@given(data=st.data(), base=st.sampled_from([("fuzz.cif", GOOD_CIF), ("POSCAR", GOOD_POSCAR)]))
def test_fuzz_mutated_structures(tmp_path, data, base):
    """Valid files with a slice replaced by random text: CIF/POSCAR syntax and numbers go wrong in many ways."""
    name, text = base
    start = data.draw(st.integers(0, len(text)))
    stop = data.draw(st.integers(start, min(len(text), start + 40)))
    insert = data.draw(st.text(alphabet=string.printable + "éÅ\x00", max_size=30))
    path = tmp_path / name
    path.write_text(text[:start] + insert + text[stop:], encoding="utf-8")
    _read_or_refuse(path)
