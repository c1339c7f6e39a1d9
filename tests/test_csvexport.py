"""The one CSV writer: quoting and spreadsheet-formula escaping."""

import csv
import io

from lmserver.csvexport import csv_response, csv_text, safe_cell


def test_formula_leading_cells_are_quoted_and_numbers_kept() -> None:
    assert safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert safe_cell("+1") == "'+1" and safe_cell("-2") == "'-2" and safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("\tx") == "'\tx"
    assert safe_cell(-2) == -2 and safe_cell(1.5) == 1.5 and safe_cell(None) == "" and safe_cell(True) == "true"
    assert safe_cell("plain, text") == "plain, text"


def test_csv_round_trips_commas_quotes_and_line_breaks() -> None:
    text = csv_text(["a", "b"], [["x, \"y\"\nz", "=1+1"], {"a": "ok", "b": None}])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["a", "b"], ["x, \"y\"\nz", "'=1+1"], ["ok", ""]]


def test_response_is_an_attachment_with_a_safe_name() -> None:
    resp = csv_response('a"b/../c.csv', ["x"], [[1]])
    assert resp.headers["Content-Disposition"] == 'attachment; filename="a-b-..-c.csv"'
    assert resp.body.decode("utf-8").startswith("\ufeffx\r\n1\r\n")
