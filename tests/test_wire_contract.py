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
from dots_common.records import RECORD_TYPES, SIGNAL_NAMES, dbus_signature

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
        assert signals[SIGNAL_NAMES[monitor]] == "ta" + record.DBUS_SIGNATURE, monitor


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
