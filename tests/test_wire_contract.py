"""The wire vocabulary (dots_common) and the contracts in dbus/ say the same
thing: every record's derived D-Bus signature is its batch signal's in
org.dots.Collector1.xml, and the collector's exported interface declares
exactly the XML's methods and signals with the XML's signatures."""

from __future__ import annotations

from pathlib import Path

from dbus_fast import introspection as intr

from dots_collector.service import CollectorInterface
from dots_common import names
from dots_common.limits import MONITORS
from dots_common.records import (BATCH_EXTRAS, PACKED_MONITORS, RECORD_TYPES, SIGNAL_NAMES,
                                 batch_field_names, batch_signature, dbus_signature, field_names,
                                 signal_signature)

DBUS_DIR = Path(__file__).resolve().parent.parent / "dbus"


def xml_interface(file: str, name: str) -> intr.Interface:
    node = intr.Node.parse((DBUS_DIR / file).read_text())
    [interface] = [i for i in node.interfaces if i.name == name]
    return interface


def signatures(interface: intr.Interface) -> tuple[dict, dict]:
    methods = {m.name: (m.in_signature, m.out_signature) for m in interface.methods}
    signals = {s.name: s.signature for s in interface.signals}
    return methods, signals


def test_every_monitor_has_a_record_and_a_signal():
    assert set(RECORD_TYPES) == set(SIGNAL_NAMES) == set(MONITORS)


def test_record_signatures_are_the_collector_contract():
    _, signals = signatures(xml_interface(names.COLLECTOR_XML, names.COLLECTOR_INTERFACE))
    for monitor, record in RECORD_TYPES.items():
        assert record.DBUS_SIGNATURE == dbus_signature(record)
        assert signals[SIGNAL_NAMES[monitor]] == signal_signature(monitor), monitor
        if monitor not in PACKED_MONITORS:
            assert signal_signature(monitor) == "ta" + batch_signature(monitor)
        extras = BATCH_EXTRAS.get(monitor, ())
        assert batch_field_names(monitor) == field_names(record) + tuple(n for n, _ in extras)
        assert batch_signature(monitor) == record.DBUS_SIGNATURE[:-1] + "".join(c for _, c in extras) + ")"


def test_file_events_are_grouped_with_a_count_and_the_last_time():
    """The contract says so: the file monitor's structs end with count and
    last_ts_ns (the grouping of identical events), packed in bytes whose
    header the XML spells out; the others carry one struct per event."""
    from dots_common.packed import HEAD

    _, signals = signatures(xml_interface(names.COLLECTOR_XML, names.COLLECTOR_INTERFACE))
    assert signals["FileEvents"] == "tay" and PACKED_MONITORS == {"filesystem"}
    assert f'header "{HEAD.format}" ({HEAD.size} bytes)' in (DBUS_DIR / names.COLLECTOR_XML).read_text()
    assert batch_field_names("filesystem")[-2:] == ("count", "last_ts_ns")
    assert set(BATCH_EXTRAS) == {"filesystem"}


def test_collector_interface_is_the_collector_contract():
    contract = signatures(xml_interface(names.COLLECTOR_XML, names.COLLECTOR_INTERFACE))
    exported = signatures(CollectorInterface().introspect())
    assert exported == contract


def test_family_contract_names_only_known_polkit_actions():
    text = (DBUS_DIR / names.FAMILY_XML).read_text()
    policy = (DBUS_DIR.parent / "polkit" / "org.dots.family.policy").read_text()
    for action in names.ACTIONS:
        assert f'id="{action}"' in policy
    assert names.FAMILY_INTERFACE in text
