"""Test-wide setup: make the collection importable as ansible_collections.ebpf.observability."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, "build", "collections")


def _link_collection():
    ns_dir = os.path.join(COLLECTIONS, "ansible_collections", "ebpf")
    link = os.path.join(ns_dir, "observability")
    if not os.path.islink(link):
        os.makedirs(ns_dir, exist_ok=True)
        try:
            os.symlink(REPO, link)
        except FileExistsError:
            pass
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


_link_collection()
