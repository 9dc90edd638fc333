"""What `vmimage` prints: fixed-column tables, records, JSON, and the progress bar."""

from __future__ import annotations

import io
import json
import os

from vmimage.commands import IMAGE_COLUMNS
from vmimage.output import Column, Printer, ProgressBar, field, render_record, render_table

IMAGE = {
    "ImageName": "ubuntu-22.04-a-rather-long-image-name-that-is-never-cut",
    "ImageType": "OSImage",
    "OS": "Linux",
    "Category": "User",
    "ImageFamily": "Ubuntu Server 22.04 LTS with a family name longer than its column",
    "PublishedDate": "2024-05-01T10:11:12Z",
    "LogicalSizeInGB": 30,
    "Label": "Ubuntu\x1b[31m red\nnewline",
}


class Tty(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_a_table_has_fixed_columns_names_whole_and_long_text_cut() -> None:
    text = render_table(
        [IMAGE, {**IMAGE, "ImageName": "b", "LogicalSizeInGB": 1234}], IMAGE_COLUMNS
    )
    header, first, second = text.splitlines()
    assert header.split() == [
        "NAME",
        "TYPE",
        "OS",
        "CATEGORY",
        "FAMILY",
        "PUBLISHED",
        "GB",
        "LABEL",
    ]
    assert first.startswith(IMAGE["ImageName"] + "  OSImage")
    assert "Ubuntu Server 22.04 LTS with a…" in first  # FAMILY: 32 wide
    assert "2024-05-01" in first and "T10" not in first
    # Control characters from the service never reach the terminal.
    assert "\x1b" not in text and first.endswith("Ubuntu [31m red newline")
    # Columns line up: every row puts PUBLISHED at the same place; numbers right-aligned.
    at = header.index("PUBLISHED")
    assert first[at : at + 10] == second[at : at + 10] == "2024-05-01"
    assert first[header.index("GB") - 2 : header.index("GB") + 2] == "  30"
    assert second[header.index("GB") - 2 : header.index("GB") + 2] == "1234"


def test_a_table_shrinks_its_text_columns_to_the_terminal_but_never_names() -> None:
    text = render_table([IMAGE], IMAGE_COLUMNS, width=120)
    assert all(len(line) <= 120 for line in text.splitlines())
    assert "2024-05-01" in text  # only FAMILY and LABEL shrink
    assert IMAGE["ImageName"] in text
    narrow = render_table([IMAGE], IMAGE_COLUMNS, width=20)  # can't fit: names stay whole
    assert IMAGE["ImageName"] in narrow


def test_missing_values_show_as_a_dash_and_ascii_terminals_get_dots() -> None:
    cols = [Column("A", field("a")), Column("B", field("b"), 5)]
    assert render_table([{"a": None, "b": "abcdefgh"}], cols, ellipsis="...").splitlines()[1] == (
        "-  ab..."
    )


def test_a_record_flattens_nested_fields_and_summarises_omitted_ones() -> None:
    doc = {
        "ImageName": "x",
        "OSDiskConfiguration": {"OS": "Linux", "OSState": "Generalized"},
        "DataDiskConfigurations": [{"Lun": 0}, {"Lun": 1}],
        "Warnings": [],
        "Probe": {"huge": list(range(100))},
    }
    assert render_record(doc, omit=("Probe",)).splitlines() == [
        "ImageName                      x",
        "OSDiskConfiguration.OS         Linux",
        "OSDiskConfiguration.OSState    Generalized",
        "DataDiskConfigurations[0].Lun  0",
        "DataDiskConfigurations[1].Lun  1",
        "Warnings                       (none)",
        "Probe                          (see --json)",
    ]
    assert all(len(line) <= 30 for line in render_record(doc, width=30).splitlines())


def test_json_output_is_the_document_and_remarks_go_to_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    p = Printer(as_json=True, out=out, err=err)
    p.json({"Images": [IMAGE], "Count": 1})
    p.note("a remark")
    p.error("ImageNotFound", "no image is named 'x'")
    assert json.loads(out.getvalue())["Images"][0]["Label"] == IMAGE["Label"]
    assert err.getvalue().splitlines() == [
        "a remark",
        "vmimage: error: ImageNotFound: no image is named 'x'",
    ]
    quiet_err = io.StringIO()
    Printer(quiet=True, out=out, err=quiet_err).note("hidden")
    assert quiet_err.getvalue() == ""


def test_the_progress_bar_only_on_a_terminal_and_not_when_quiet() -> None:
    assert Printer(err=io.StringIO()).progress_bar("d.vhd") is None
    assert Printer(quiet=True, err=Tty()).progress_bar("d.vhd") is None
    assert isinstance(Printer(err=Tty()).progress_bar("d.vhd"), ProgressBar)


def test_the_progress_bar_shows_data_sent_virtual_size_covered_and_rate() -> None:
    mib = 1024 * 1024
    bar = ProgressBar("d.vhd", Tty(), unicode=False)
    line = bar.render(
        sent=32 * mib,
        data_total=64 * mib,
        covered=512 * 1024 * mib,
        size=1024 * 1024 * mib,
        seconds=2.0,
    )
    assert (
        line == "d.vhd [########--------]  50% | data 32.0/64.0 MiB | disk 0.5/1.0 TiB | 16.8 MB/s"
    )
    stream = Tty()
    bar = ProgressBar("d.vhd", stream)
    bar.update(1, 2, 100, 100, 1.0)
    bar.close()
    assert stream.getvalue().startswith("\rd.vhd [████████████████] 100%")
    assert stream.getvalue().endswith("\n")


def test_on_a_narrow_terminal_the_bar_goes_first(monkeypatch) -> None:
    import shutil

    monkeypatch.setattr(
        shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((60, 24))
    )
    stream = Tty()
    ProgressBar("d.vhd", stream).update(1 << 20, 2 << 20, 50, 100, 1.0)
    line = stream.getvalue()[1:]
    assert len(line) == 59 and "█" not in line and line.startswith("d.vhd  50% | data 1.0/2.0 MiB")
