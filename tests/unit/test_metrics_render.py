"""exporter text format: metric families -> the text exposition (escaping, sorting, Go's float
spelling, the renderer's cache), checked against prometheus_client's own rendering."""
import math

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import DecoderErrors, MapSnapshot, MetricFamily, go_float, parse_bucket_index
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import TextRenderer, render_text, to_prometheus_client
from metrics_cases import BIOLATENCY, OPS, bio_key, collector_for, fill_exp2, ops_key, samples, u64


def test_escaping_sorting_and_gauges():
    odd = MetricFamily("ebpf_exporter_odd_total", 'Help with \\ and\nnewline', "counter", ("b", "a"))
    odd.add(("x", 'say "hi"\\\n'), 1)
    odd.add(("a", "z"), 2)
    gauge = MetricFamily("ebpf_exporter_last_pass_seconds", "Duration of the last pass", "gauge")
    gauge.add((), 0.25)
    text = render_text([odd, gauge])
    assert text == (
        "# HELP ebpf_exporter_last_pass_seconds Duration of the last pass\n"
        "# TYPE ebpf_exporter_last_pass_seconds gauge\n"
        "ebpf_exporter_last_pass_seconds 0.25\n"
        "# HELP ebpf_exporter_odd_total Help with \\\\ and\\nnewline\n"
        "# TYPE ebpf_exporter_odd_total counter\n"
        'ebpf_exporter_odd_total{a="say \\"hi\\"\\\\\\n",b="x"} 1\n'
        'ebpf_exporter_odd_total{a="z",b="a"} 2\n')
    got = samples(text)
    assert got[("ebpf_exporter_odd_total", (("a", 'say "hi"\\\n'), ("b", "x")))] == 1.0


def test_prometheus_client_gives_the_same_samples():
    collector = collector_for(BIOLATENCY, OPS)
    entries = fill_exp2([1, 5, 9, 300], lambda b: bio_key(b"sda", 1, b), 20)
    families = collector.collect({"bio_latency_seconds": MapSnapshot(entries, 8, False),
                                  "ops_total": MapSnapshot([(ops_key(1, 3), u64(4))], 8, False)})
    families.append(MetricFamily("ebpf_exporter_up", "Up", "gauge"))
    families[-1].add((), 1)

    class Collector:
        def collect(self):
            return to_prometheus_client(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    ours = samples(render_text(families))
    theirs = samples(generate_latest(registry).decode())
    assert ours == theirs
    assert len(ours) == 22 + 2 + 1 + 1


@pytest.mark.parametrize("value, text", [
    (1, "1"), (0, "0"), (0.5, "0.5"), (524288, "524288"), (1048576, "1.048576e+06"), (1e-6, "1e-06"),
    (2 ** -20, "9.5367431640625e-07"), (0.0001, "0.0001"), (0.00001, "1e-05"), (123456789.0, "1.23456789e+08"),
    (0.0018239999999999999, "0.0018239999999999999"), (-2.5, "-2.5"), (math.inf, "+Inf"), (1e21, "1e+21"),
])
def test_go_float(value, text):
    assert go_float(value) == text


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("17", 17), ("0x1f", 31), ("0o17", 15), ("017", 15), ("0b101", 5), ("1_000", 1000),
    ("18446744073709551615", 2 ** 64 - 1), ("18446744073709551616", None), ("-1", None), ("", None),
    ("08", None), ("1e3", None), ("abc", None),
])
def test_parse_bucket_index_is_go_parseuint(text, value):
    assert parse_bucket_index(text) == value


def test_decoder_errors_api():
    errors = DecoderErrors()
    assert render_text([errors.family()]) == ""
    errors.add("bio_latency_seconds", "majorminor")
    errors.add("bio_latency_seconds", "majorminor", 2)
    family = errors.family()
    assert family.name == "ebpf_exporter_decoder_errors_total" and family.label_names == ("metric", "decoder")
    assert family.series == {("bio_latency_seconds", "majorminor"): 3}
    with pytest.raises(BpfError, match="type must be counter, gauge or histogram"):
        MetricFamily("x", "y", "summary")


def test_text_renderer_reuses_its_cache_only_while_the_series_stay_the_same():
    renderer = TextRenderer()
    family = MetricFamily("ebpf_exporter_x_total", "help", "counter", ("b", "a"))
    family.add(("2", "z"), 1)
    family.add(("1", "y"), 2)
    assert renderer.render([family]) == render_text([family])
    family.series[("2", "z")] = 5  # same series, new value
    assert renderer.render([family]) == render_text([family])
    assert 'ebpf_exporter_x_total{a="z",b="2"} 5\n' in renderer.render([family])
    family.add(("0", 'q"uote'), 3)  # a new series: sorted in, escaped
    text = renderer.render([family])
    assert text == render_text([family])
    assert text.index('a="q\\"uote"') < text.index('a="y"')
    del family.series[("1", "y")]
    family.add(("9", "w"), 1)  # as many series as before, another set
    assert renderer.render([family]) == render_text([family])
    family.series[("9", "w")] = 0.5
    assert renderer.render([family]) == render_text([family])
