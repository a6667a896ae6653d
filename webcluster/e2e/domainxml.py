"""The program's libvirt XSLTs, applied with libxslt's own `xsltproc` as libvirt would apply them.

pulumi-libvirt builds a domain (or network) XML and runs the resource's `xml.xslt` over it
before defining it. The e2e guests must get the hardware that results (the NICs' PCI
slots decide their kernel names), so the run applies the recorded stylesheet to a
provider-shaped document and reads the addresses back, instead of assuming them.
"""

from __future__ import annotations

import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence


def apply(xslt: str, document: str) -> str:
    """`document` transformed by `xslt` (xsltproc, the libxslt libvirt links against)."""
    with tempfile.TemporaryDirectory(prefix="hawc-xslt-") as tmp:
        sheet, doc = Path(tmp, "t.xsl"), Path(tmp, "d.xml")
        sheet.write_text(xslt)
        doc.write_text(document)
        out = subprocess.run(["xsltproc", str(sheet), str(doc)], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise ValueError(f"xsltproc failed: {out.stderr.strip()}")
    return out.stdout


def provider_domain(name: str, macs: Sequence[str]) -> str:
    """The shape of the domain XML pulumi-libvirt generates: interfaces in declared order, no addresses."""
    nics = "".join(f"<interface type='network'><mac address='{m}'/><source network='n{i}'/><model type='virtio'/></interface>" for i, m in enumerate(macs))
    return f"<domain type='qemu'><name>{name}</name><devices><disk type='volume' device='disk'><target dev='vda' bus='virtio'/></disk>{nics}</devices></domain>"


def nic_pci_slots(document: str) -> list[Optional[int]]:
    """PCI slot of each interface, in document order (None where libvirt would choose)."""
    slots: list[Optional[int]] = []
    for nic in ET.fromstring(document).iter("interface"):
        address = nic.find("address")
        slots.append(int(address.get("slot", "0"), 16) if address is not None and address.get("type") == "pci" else None)
    return slots


def domain_nic_slots(xslt: Optional[str], name: str, macs: Sequence[str]) -> list[Optional[int]]:
    """The PCI slots a recorded Domain's NICs end up in."""
    document = provider_domain(name, macs)
    return nic_pci_slots(apply(xslt, document) if xslt else document)
