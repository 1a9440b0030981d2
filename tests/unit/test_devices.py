"""Device rules, pure: warranty arithmetic, what an installation files, import rows, what a repair request may be, which
words report a fault; and QR codes that decode to exactly the link they were made for."""

from __future__ import annotations

from datetime import date

import pytest
import zxingcpp

from bots.photos import PhotoRefused
from bots.voice import check_voice
from domain.devices import (
    DeviceFields,
    add_months,
    check_request,
    checked,
    from_installation,
    preferred_day_choices,
    product_in,
    read_row,
    under_warranty,
    wants_repair,
)
from domain.errors import InvalidInput
from services import qr

TODAY = date(2026, 11, 23)
ROW = {"customer_phone": "13800000001", "customer_name": "Acme", "address": "8 Huaihai Road", "lat": "31.22", "lon": "121.47",
       "region": "Huangpu", "category": "AirCon", "product": "Rooftop unit", "serial": " DK-1 ", "installed_on": "2025-03-01",
       "warranty_months": "24"}


def test_months_are_added_as_calendar_months_ending_on_the_last_day_of_a_shorter_month():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2026, 11, 23), 14) == date(2028, 1, 23)
    assert under_warranty(date(2026, 11, 23), TODAY) and not under_warranty(date(2026, 11, 22), TODAY) and not under_warranty(None, TODAY)


def test_an_installation_files_the_checklist_s_fields_else_the_job_s_product_with_the_default_warranty():
    filed = from_installation({"serial": "GR-1", "model": "KFR", "location": "bedroom", "warranty_months": "36"},
                              category="aircon", product="Split AC", brand="Gree", installed_on=TODAY)
    assert (filed.serial, filed.model, filed.location, filed.brand, filed.warranty_until) == ("GR-1", "KFR", "bedroom", "Gree", date(2029, 11, 23))
    plain = from_installation({}, category="aircon", product="Split AC", brand=None, installed_on=TODAY)
    assert (plain.serial, plain.location, plain.warranty_until) == (None, "", date(2027, 11, 23))
    # a wrong warranty answer does not lose the device: the default applies
    assert from_installation({"warranty_months": "forever"}, category="aircon", product="AC", brand=None, installed_on=TODAY).warranty_until == date(2027, 11, 23)


def test_fields_are_tidied_and_impossible_ones_refused_by_name():
    tidy = checked(DeviceFields(" AirCon ", "  Split   AC ", "", None, " GR 1 ", location="  "), TODAY)
    assert (tidy.product_category, tidy.product_name, tidy.brand, tidy.serial, tidy.location) == ("aircon", "Split AC", None, "GR 1", "")
    for fields, code in (
        (DeviceFields("", "AC"), "device_category_invalid"),
        (DeviceFields("aircon", "AC", serial="x" * 201), "device_serial_invalid"),
        (DeviceFields("aircon", "AC", installed_on=date(2027, 1, 1)), "device_installed_in_future"),
        (DeviceFields("aircon", "AC", installed_on=TODAY, warranty_until=date(2026, 1, 1)), "device_warranty_before_install"),
    ):
        with pytest.raises(InvalidInput) as refused:
            checked(fields, TODAY)
        assert refused.value.code == code


def test_an_import_row_is_read_with_its_site_and_warranty_or_refused_naming_the_problem():
    row = read_row(ROW, TODAY)
    assert (row.fields.product_category, row.fields.serial, row.fields.warranty_until, row.site.region) == ("aircon", "DK-1", date(2027, 3, 1), "Huangpu")
    for change, code in (({"lat": "north"}, "lat_invalid"), ({"lat": "91"}, "coordinates_out_of_range"), ({"product": ""}, "missing_product"),
                         ({"installed_on": "1/3/2025"}, "installed_on_invalid"), ({"lon": "nan"}, "lon_invalid")):
        with pytest.raises(InvalidInput) as refused:
            read_row({**ROW, **change}, TODAY)
        assert refused.value.code == code


def test_a_request_is_a_repair_with_words_or_maintenance_on_the_next_week_s_days():
    days = preferred_day_choices(TODAY)
    assert days[0] == date(2026, 11, 24) and len(days) == 7
    check_request("repair", "leaks", "urgent", (days[0], days[6]), 5, TODAY)
    check_request("inspection", "", "normal", (), 0, TODAY)
    for args, code in ((("delivery", "x", "normal", (), 0), "repair_kind_invalid"), (("repair", " ", "normal", (), 0), "repair_description_missing"),
                       (("repair", "x", "asap", (), 0), "repair_urgency_invalid"), (("repair", "x", "normal", (TODAY,), 0), "repair_days_invalid"),
                       (("repair", "x", "normal", (days[0], days[0]), 0), "repair_days_invalid"), (("repair", "x", "normal", (), 6), "repair_too_many_photos")):
        with pytest.raises(InvalidInput) as refused:
            check_request(*args, TODAY)
        assert refused.value.code == code


@pytest.mark.parametrize(("text", "fault", "product"), [
    ("my washing machine leaks", True, "washer"),
    ("洗衣机漏水了", True, "washer"),
    ("空调不制冷", True, "aircon"),
    ("the air-conditioner stopped working", True, "aircon"),
    ("fridge is making a loud noise", True, "fridge"),
    ("沙发坏了", True, "sofa"),
    ("when will the driver come?", False, None),
    ("thanks, all good", False, None),
])
def test_fault_words_and_the_product_named_are_found_in_english_and_chinese(text, fault, product):
    assert wants_repair(text) is fault
    assert product_in(text) == product


def test_a_code_decodes_to_its_link_and_a_sheet_to_every_link_on_its_page():
    link = "https://t.me/acme_service_bot?start=Ab3_x-9ZpQ0rStUvWxYz12345678abcd"
    assert [r.text for r in zxingcpp.read_barcodes(qr.qr_image(link))] == [link]
    labels = [qr.Label(f"https://example.com/customer#customer=code{i}", f"Unit {i}", ("roof",)) for i in range(13)]
    pages = qr.sheet_pages(labels)
    assert len(pages) == 2 and pages[0].size == qr.A4
    assert sorted(r.text for r in zxingcpp.read_barcodes(pages[1])) == [labels[12].link]
    with pytest.raises(ValueError):
        qr.sheet_pages([])


def test_the_printable_page_escapes_what_it_prints():
    page = qr.sheet_html([qr.Label("https://x/y", "<script>alert(1)</script>", ("厨房",))], title="t")
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "厨房" in page


def test_voice_notes_are_kept_only_as_known_audio_within_the_size_limit(tmp_path):
    assert check_voice(b"OggS" + bytes(10), max_bytes=100).extension == ".ogg"
    assert check_voice(b"\x00\x00\x00\x20ftypM4A " + bytes(10), max_bytes=100).extension == ".m4a"
    stored = check_voice(b"ID3" + bytes(10), max_bytes=100).store(tmp_path, "n")
    assert stored.name == "n.mp3" and stored.read_bytes().startswith(b"ID3")
    for data, code in ((b"OggS" + bytes(200), "too_big"), (b"<html>", "not_audio"), (b"", "not_audio")):
        with pytest.raises(PhotoRefused) as refused:
            check_voice(data, max_bytes=100)
        assert refused.value.code == code
