# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PCI vendor, device, class and subclass names from the pci.ids database, for the ``pci_*``
label decoders.

The database is Debian's ``pci.ids`` package (``/usr/share/misc/pci.ids``; hwdata's
``/usr/share/hwdata/pci.ids`` is tried next), read on first use. Each decoder takes a decimal
number (after ``uint``) and looks it up the way ebpf_exporter does (decoder/pci_*.go over the
pcidb package), down to the keys it builds:

=============  =================================================================================
pci_vendor     ``%02x`` of the number among the vendor ids (4 hex digits), else
               ``unknown pci vendor: 0x<key>``
pci_device     ``%04x`` of the number among vendor id + device id (``0x80861000`` is Intel's
               1000), else ``unknown pci device: 0x<key>``
pci_class      ``%02x`` of the number among the class ids, else ``unknown pci class: 0x<key>``
pci_subclass   class ``%02x`` of number >> 8 and subclass ``%02x`` of number & 0xff, else
               ``unknown pci subclass: 0x<sub> (class 0x<class>)`` or
               ``unknown pci class: 0x<class>``
=============  =================================================================================

Where no database is installed, ebpf_exporter names every value ``missing pci.ids db`` (one
series for all devices); here the value is the hex id the decoder would have looked up
(``0x8086``), so devices stay apart, and the exporter logs the missing file once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import logging
import threading

PCI_IDS_PATHS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")

LOG = logging.getLogger("ebpf_observability.exporter")


def _parse(handle):
    """(vendors {id: name}, products {vendor id + device id: name}, classes {id: (name,
    {subclass id: name})}) of a pci.ids file."""
    vendors, products, classes = {}, {}, {}
    vendor = klass = None
    for raw in handle:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if not line or line.startswith("#"):
            continue
        depth = len(line) - len(line.lstrip("\t"))
        ident, _sep, name = line.strip("\t").partition(" ")
        name = name.strip()
        if depth == 0:
            if ident == "C":
                ident, _sep, name = name.partition(" ")
                klass = classes[ident.lower()] = (name.strip(), {})
                vendor = None
            else:
                vendor, klass = ident.lower(), None
                vendors[vendor] = name
        elif depth == 1 and klass is not None:
            klass[1][ident.lower()] = name
        elif depth == 1 and vendor is not None:
            products[vendor + ident.lower()] = name
    return vendors, products, classes


class PciNames:
    """The pci.ids database of this host, read on first use; decoders for the four names."""

    def __init__(self, paths=PCI_IDS_PATHS):
        self.paths = paths
        self._db = None
        self._lock = threading.Lock()

    def _tables(self):
        with self._lock:
            if self._db is None:
                self._db = False
                for path in self.paths:
                    try:
                        with open(path, "rb") as handle:
                            self._db = _parse(handle)
                        break
                    except OSError:
                        continue
                else:
                    LOG.warning("no PCI id database (%s): pci_* labels are hex ids; install Debian's "
                                "pci.ids package for names", " or ".join(self.paths))
            return self._db

    def _name(self, table, key, what):
        db = self._tables()
        if not db:
            return "0x" + key
        found = db[table].get(key)
        if found is None:
            return "unknown pci %s: 0x%s" % (what, key)
        return found[0] if table == 2 else found

    def vendor(self, number):
        return self._name(0, "%02x" % number, "vendor")

    def device(self, number):
        return self._name(1, "%04x" % number, "device")

    def klass(self, number):
        return self._name(2, "%02x" % number, "class")

    def subclass(self, number):
        class_id, subclass_id = "%02x" % (number >> 8), "%02x" % (number & 0xff)
        db = self._tables()
        if not db:
            return "0x%s%s" % (class_id, subclass_id)
        found = db[2].get(class_id)
        if found is None:
            return "unknown pci class: 0x" + class_id
        name = found[1].get(subclass_id)
        return name if name is not None else "unknown pci subclass: 0x%s (class 0x%s)" % (subclass_id, class_id)
