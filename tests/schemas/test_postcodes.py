import pytest

from schemas.postcodes import canonical_postcode, is_no_fixed_abode_postcode


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" sw1a1aa", "SW1A 1AA"),
        ("SW1A 1AA", "SW1A 1AA"),
        ("sw1a  1aa ", "SW1A 1AA"),
        ("m11ae", "M1 1AE"),
        ("B338TH", "B33 8TH"),
        ("cr2 6xh", "CR2 6XH"),
        ("DN551PT", "DN55 1PT"),
        ("w1a0ax", "W1A 0AX"),
        ("WC1B 3DG", "WC1B 3DG"),
        ("gir0aa", "GIR 0AA"),
        ("nf11nf", "NF1 1NF"),
        ("NF1 1FA", "NF1 1FA"),
    ],
)
def test_canonical_postcode(raw: str, expected: str) -> None:
    assert canonical_postcode(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "SW1A", "1AA", "SW1A 1CA", "SW1A 1AI", "12345", "SW1A1AAA", "S 1AA", "ABC1 1AA", "Q1 1A1"],
)
def test_invalid_postcode_rejected_with_clear_message(raw: str) -> None:
    with pytest.raises(ValueError, match="postcode should be a UK postcode"):
        canonical_postcode(raw)


def test_no_fixed_abode_postcodes() -> None:
    assert is_no_fixed_abode_postcode("nf1 1nf")
    assert is_no_fixed_abode_postcode("NF11FA")
    assert not is_no_fixed_abode_postcode("SW1A 1AA")
    assert not is_no_fixed_abode_postcode("junk")
