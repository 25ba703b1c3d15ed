"""exporter counter_columns: counters rendered from a map's columns give the text, series and decoder
errors the general path (collector's per-entry decoding, TextRenderer) gives for the same entries."""
import random
import struct

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.collector import MetricsCollector
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import (
    MapColumns, MapSnapshot, MetricFamily, u64_sums,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import parse_metrics_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import TextRenderer, render_text

# Labels in an order their names do not sort in, of every width the columns cut (aligned 1/2/4/8-byte
# integers, a 3-byte field read as bytes, padding), decoders that map several values to one text,
# that drop entries (regexp), that fail for some values (errno of hex text), and label values the text
# format escapes.
MIXED = """
metrics:
  counters:
    - name: mixed_total
      help: Every kind of label
      labels:
        - name: zone
          size: 1
          padding: 1
          decoders:
            - name: uint
            - name: static_map
              static_map: {0: 'a"b', 1: 'back\\\\slash', 2: "new\\nline", 3: "50%", 4: "a b", 5: "a!", 6: "a"}
        - name: kind
          size: 2
          decoders:
            - name: uint
            - name: regexp
              regexps: ["^[0-8]$", "^(1[0-5])$"]
        - name: id
          size: 4
          decoders:
            - name: uint
        - name: blob
          size: 3
          padding: 1
          decoders:
            - name: BLOB
"""
KEY = struct.Struct("<BxHI3sx")
FAILING = "hex\n            - name: errno"  # the hex text of blob 2 is not a number


def collector_for(config):
    return MetricsCollector(parse_metrics_config(yaml.safe_load(config), "test.yaml"))


def general_path(collector):
    """The same collector with the columns path switched off (what it falls back to)."""
    for plan in collector.plans.values():
        plan.columns = None
    return collector


def _blob(value):
    return [value, 0, 7 if value < 2 else 0xa7]


def entries_for(rng, count, ids, cpus=1, big=False):
    """count entries with random keys (ids: the values of the id label), or every key when count is None."""
    if count is None:
        keys = [KEY.pack(zone, kind, one, bytes(_blob(blob)))
                for zone in range(8) for kind in range(20) for one in ids for blob in range(3)]
        rng.shuffle(keys)
    else:
        keys = set()
        while len(keys) < count:
            keys.add(KEY.pack(rng.randrange(8), rng.randrange(20), rng.choice(ids), bytes(_blob(rng.randrange(3)))))
    top = 2 ** 64 - 1 if big else 1000
    return [(key, struct.pack("<%dQ" % cpus, *[rng.randint(0, top) for _cpu in range(cpus)])) for key in keys]


def both(config, entries, percpu):
    fast, slow = collector_for(config), general_path(collector_for(config))
    snapshot = MapSnapshot(entries, 8, percpu)
    fast_families = fast.collect({"mixed_total": MapColumns.of(snapshot)})
    slow_families = slow.collect({"mixed_total": snapshot})
    return fast, slow, fast_families, slow_families


@pytest.mark.parametrize("blob", ["hex", FAILING])
@pytest.mark.parametrize("grid", ["full", "dense", "sparse"])
@pytest.mark.parametrize("cpus", [1, 3])
def test_columns_render_as_the_general_path(blob, grid, cpus):
    rng = random.Random("%s%s%d" % (blob, grid, cpus))
    ids = list(range(5)) if grid != "sparse" else [rng.randrange(2 ** 32) for _id in range(3000)]
    entries = entries_for(rng, {"full": None, "dense": 600, "sparse": 400}[grid], ids, cpus, big=cpus > 1)
    fast, slow, fast_families, slow_families = both(MIXED.replace("BLOB", blob), entries, cpus > 1)
    assert render_text(fast_families) == render_text(slow_families)
    assert fast.errors.counts == slow.errors.counts
    if blob == FAILING:
        assert slow.errors.counts[("mixed_total", "errno")] > 0
    assert fast_families[0].rendered() is not None
    assert fast_families[0].series == slow_families[0].series
    assert fast_families[0].rendered() is None  # the dict is the family's content from now on


def test_entries_sharing_a_label_set_are_summed_by_the_general_path():
    config = MIXED.replace("BLOB", "hex").replace("size: 4\n          decoders:\n            - name: uint",
                                                  "size: 4\n          decoders:\n            - name: string")
    entries = [(KEY.pack(1, 3, 0x41, b"\0\0\0"), struct.pack("<Q", 5)),
               (KEY.pack(1, 3, 0x00420041, b"\0\0\0"), struct.pack("<Q", 7))]  # "A", "A\0B": one label set
    fast, _slow, fast_families, slow_families = both(config, entries, False)
    assert fast_families[0].rendered() is None
    assert render_text(fast_families) == render_text(slow_families)
    assert 'id="A"' in render_text(fast_families) and "} 12\n" in render_text(fast_families)
    again = fast.collect({"mixed_total": MapColumns.of(MapSnapshot(entries, 8, False))})
    assert render_text(again) == render_text(slow_families)


def test_a_pass_with_the_same_keys_reuses_the_layout_with_new_values():
    rng = random.Random(3)
    entries = entries_for(rng, 300, list(range(30)))
    collector = collector_for(MIXED.replace("BLOB", "hex"))
    first = render_text(collector.collect({"mixed_total": MapColumns.of(MapSnapshot(entries, 8, False))}))
    plan = collector.plans["mixed_total"]
    layout = plan.columns._last
    changed = [(key, struct.pack("<Q", index * 3)) for index, (key, _value) in enumerate(entries)]
    second = render_text(collector.collect({"mixed_total": MapColumns.of(MapSnapshot(changed, 8, False))}))
    assert plan.columns._last is layout  # same keys, same order: nothing built again
    reference = general_path(collector_for(MIXED.replace("BLOB", "hex")))
    assert second == render_text(reference.collect({"mixed_total": MapSnapshot(changed, 8, False)}))
    assert second != first
    shuffled = changed[:]
    rng.shuffle(shuffled)
    assert render_text(collector.collect({"mixed_total": MapColumns.of(MapSnapshot(shuffled, 8, False))})) == second
    assert plan.columns._last is not layout


def test_failures_are_counted_at_every_pass():
    rng = random.Random(4)
    entries = entries_for(rng, 50, list(range(10)))
    collector = collector_for(MIXED.replace("BLOB", FAILING))
    snapshot = MapColumns.of(MapSnapshot(entries, 8, False))
    collector.collect({"mixed_total": snapshot})
    once = collector.errors.counts[("mixed_total", "errno")]
    collector.collect({"mixed_total": snapshot})
    assert once and collector.errors.counts[("mixed_total", "errno")] == 2 * once


def test_every_entry_dropped_gives_no_series():
    collector = collector_for(MIXED.replace("BLOB", "hex"))
    entries = [(KEY.pack(1, 19 + 1, 1, b"abc"), struct.pack("<Q", 1))]  # kind 20 matches no regexp
    assert collector.collect({"mixed_total": MapColumns.of(MapSnapshot(entries, 8, False))}) == []


def test_u64_sums_stay_exact_beyond_64_bits():
    rng = random.Random(5)
    for slots in (1, 2, 5):
        values = [rng.choice([0, 1, 2 ** 64 - 1, rng.getrandbits(64)]) for _value in range(40 * slots)]
        data = struct.pack("<%dQ" % len(values), *values)
        assert u64_sums(data, 40, slots) == [sum(values[i * slots:(i + 1) * slots]) for i in range(40)]


def test_a_family_of_rendered_columns_renders_its_dict_once_changed():
    collector = collector_for(MIXED.replace("BLOB", "hex"))
    entries = [(KEY.pack(1, 3, 9, b"abc"), struct.pack("<Q", 5))]
    family = collector.collect({"mixed_total": MapColumns.of(MapSnapshot(entries, 8, False))})[0]
    assert family.series_count() == 1 and family.rendered() is not None
    family.add(("x", "3", "9", "616263"), 2)
    assert family.rendered() is None and family.series_count() == 2
    plain = MetricFamily(family.name, family.help, "counter", family.label_names)
    plain.series = dict(family.series)
    assert TextRenderer().render([family]) == TextRenderer().render([plain])
