"""A program whose variant changes (a new `variant:`, or `auto` choosing another object after an
upgrade of the collection) is replaced whole by site.yml: the new object's programs run at their
own hooks and nothing of the old variant stays attached. net_tracepoints goes through its three
objects: tracepoint links, then BTF-typed tracepoint links, then raw tracepoint links."""
import pytest

from test_roles import SITE, kernel_state, play, settings, work  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend

PROGRAMS = ["net_rx", "net_tx", "skb_kfree", "tcp_retransmit", "tcp_set_state"]
# variant -> the link type its programs are attached with (tp_btf programs: raw tracepoint links)
LINKS = {"tracepoint": "perf_event", "tp_btf": "raw_tracepoint", "raw_tracepoint": "raw_tracepoint"}


def links(pin_root):
    """[(program, link type, whether it runs the pinned version)] of net_tracepoints' attachments."""
    info = InfoBackend(pin_root, gather=("objects", "attachments")).run()
    pinned = dict((p["name"], p["id"]) for o in info["objects"] for p in o["programs"] if o["name"] == "net_tracepoints")
    return sorted((a["program"], a.get("link_type"), a["prog_id"] == pinned[a["program"]])
                  for a in info["attachments"] if a["object"] == "net_tracepoints")


@pytest.mark.playbook
def test_changing_the_variant_replaces_every_attachment(pin_root, work, build_dir):  # noqa: F811
    variants = ["tracepoint", "tp_btf", "raw_tracepoint"]
    if not features.has_tp_btf() or not features.has_perf_link():
        pytest.skip("this kernel lacks BTF-typed tracepoints or perf_event links")
    for variant in variants:
        extra = settings(work, pin_root, build_dir, [{"name": "net_tracepoints", "variant": variant}])
        play(SITE, extra)
        assert links(pin_root) == [(p, LINKS[variant], True) for p in PROGRAMS], variant
        assert sorted(kernel_state(pin_root)) == ["net_tracepoints"]
