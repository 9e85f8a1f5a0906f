"""The wire contract, ``dbus/org.dots.Family1.xml``, loaded at start.

The XML is the source of truth: the dispatcher checks its table against
it (every method routed, same signatures), signals are sent with its
signatures, and Introspect answers with it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from dbus_fast import introspection as intr

from dots_common import names


#: where the XML is looked for, first hit wins: $DOTS_DBUS_INTERFACES_DIR,
#: the source tree (editable installs, tests), the system's interfaces dir
SEARCH_DIRS = (
    os.environ.get("DOTS_DBUS_INTERFACES_DIR", ""),
    str(Path(__file__).resolve().parent.parent / "dbus"),
    "/usr/share/dbus-1/interfaces",
)


@dataclasses.dataclass(frozen=True)
class Contract:
    interface: intr.Interface
    #: method -> (in signature, out signature)
    methods: dict[str, tuple[str, str]]
    #: signal -> signature
    signals: dict[str, str]
    #: what Introspect on the object returns
    introspection: str


def find_xml() -> Path:
    for folder in SEARCH_DIRS:
        if folder and (path := Path(folder) / names.FAMILY_XML).is_file():
            return path
    raise FileNotFoundError(f"{names.FAMILY_XML} not found in any of "
                            f"{', '.join(d for d in SEARCH_DIRS if d)}")


def load_contract(path: Path | None = None) -> Contract:
    node = intr.Node.parse((path or find_xml()).read_text())
    matches = [i for i in node.interfaces if i.name == names.FAMILY_INTERFACE]
    if len(matches) != 1:
        raise ValueError(f"the contract does not declare interface {names.FAMILY_INTERFACE} once")
    interface = matches[0]
    methods = {m.name: (m.in_signature, m.out_signature) for m in interface.methods}
    signals = {s.name: s.signature for s in interface.signals}
    live = intr.Node.default(names.FAMILY_PATH)
    live.interfaces.append(interface)
    return Contract(interface, methods, signals, live.tostring())
