"""The exporter's logic that needs no BPF: config checks, scheduling, atomic writes, pin access
on an ordinary directory tree, merging families, problem logging and the command line."""
import logging
import os
import stat

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.exporter import cli as exporter_cli
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import Exporter
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_access import grant_pin_access
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.config import (
    DEFAULT_INTERVAL, DEFAULT_TEXTFILE, parse_exporter_config,
)
from ansible_collections.ebpf.observability.plugins.module_utils.state.atomic_file import (
    remove_stale_temporaries, write_atomic,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import (
    DecoderErrors, MetricFamily, decoder_errors_family,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.link_pins import pinned_link_attachments
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import pin_key
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.self_metrics import (
    attached_family, program_families,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METRICS = {"metrics": {"counters": [{"name": "c_total", "help": "h",
                                     "labels": [{"name": "a", "size": 4, "decoders": [{"name": "uint"}]}]}]}}


# ------------------------------------------------------------------------------ config

def test_config_defaults_and_programs():
    config = parse_exporter_config({"programs": [{"name": "one", "metrics": METRICS}, {"name": "two"}]})
    assert config.textfile == DEFAULT_TEXTFILE and config.interval == DEFAULT_INTERVAL and config.file_mode == 0o644
    assert [p.name for p in config.programs] == ["one", "two"]
    assert config.programs[0].pin_dir == "/sys/fs/bpf/ebpf_observability/one"
    assert config.programs[0].metrics.counters[0].name == "c_total" and config.programs[1].metrics is None
    assert parse_exporter_config(None).programs == ()
    assert config.syscall_names == "ebpf_exporter" and config.skip_zero_array_entries is False
    assert config.max_series_per_metric == 0
    earlier = parse_exporter_config({"syscall_names": "kernel", "skip_zero_array_entries": True})
    assert earlier.syscall_names == "kernel" and earlier.skip_zero_array_entries is True


def test_config_reads_metrics_files_through_the_callers_loader():
    seen = []
    config = parse_exporter_config({"programs": [{"name": "one", "metrics_file": "/etc/m.yaml"}]},
                                   load_file=lambda path: seen.append(path) or METRICS)
    assert seen == ["/etc/m.yaml"] and config.programs[0].source == "/etc/m.yaml"


@pytest.mark.parametrize("data, words", [
    ({"colour": 1}, "unknown key(s) colour"),
    ({"textfile": "/tmp/x.txt"}, "must end in .prom"),
    ({"textfile": "relative.prom"}, "absolute path"),
    ({"interval": 0}, "interval must be"),
    ({"interval": True}, "interval must be"),
    ({"file_mode": "0999"}, "octal mode"),
    ({"file_mode": 644}, "octal mode"),
    ({"programs": {"name": "x"}}, "programs must be a list"),
    ({"syscall_names": "strace"}, "syscall_names must be one of ebpf_exporter, kernel"),
    ({"skip_zero_array_entries": "yes"}, "skip_zero_array_entries must be true or false"),
    ({"max_series_per_metric": -1}, "max_series_per_metric must be a whole number >= 0"),
    ({"max_series_per_metric": True}, "max_series_per_metric must be a whole number >= 0"),
    ({"programs": [{"name": "a/b"}]}, "invalid program name"),
    ({"programs": [{"name": "a"}, {"name": "a"}]}, "listed twice: a"),
    ({"programs": [{"name": "a", "metrics": METRICS, "metrics_file": "/m.yaml"}]}, "not both"),
    ({"programs": [{"name": "a", "metrics_file": "/m.yaml"}]}, "reads no files"),
    ({"programs": [{"name": "a", "metrics_file": "m.yaml"}]}, "absolute path"),
    ({"programs": [{"name": "a", "color": 1}]}, "unknown key(s) color"),
    ({"programs": [{"name": "a", "metrics": {"metrics": {}}}]}, "metrics are not defined"),
])
def test_config_errors_name_the_problem(data, words):
    with pytest.raises(BpfError) as err:
        parse_exporter_config(data, "cfg.yml")
    assert words in str(err.value) and str(err.value).startswith("cfg.yml")


def test_static_maps_name_the_deployments_classes():
    with open(os.path.join(REPO, "bpf", "tc_classifier.yaml")) as f:
        metrics = yaml.safe_load(f)
    config = parse_exporter_config({"programs": [{"name": "tc_classifier", "metrics": metrics,
                                                  "static_maps": {"class": {"0": "default", "1": "dns", 3: "web"}}}]})
    counters = config.programs[0].metrics.counters
    assert [c.name for c in counters] == ["tc_class_packets_total", "tc_class_bytes_total"]
    for counter in counters:  # both counters share their labels in the YAML (an anchor)
        class_label, direction = counter.labels
        assert class_label.decoders[1].static_map == {"0": "default", "1": "dns", "3": "web"}
        assert direction.decoders[1].static_map == {"0": "ingress", "1": "egress"}
    assert metrics["metrics"]["counters"][0]["labels"][0]["decoders"][1]["static_map"] == {0: "default"}  # not changed


@pytest.mark.parametrize("static_maps, words", [
    ({"a": {"1": "x"}}, "label(s) a, which have no static_map decoder"),
    ({"nope": {"1": "x"}}, "label(s) nope, which have no static_map decoder"),
    ({"a": ["x"]}, "static_maps must map label names"),
    (["a"], "static_maps must map label names"),
])
def test_static_maps_errors(static_maps, words):
    with pytest.raises(BpfError) as err:
        parse_exporter_config({"programs": [{"name": "one", "metrics": METRICS, "static_maps": static_maps}]}, "cfg.yml")
    assert str(err.value).startswith("cfg.yml: programs[0] (one): ") and words in str(err.value)
    with pytest.raises(BpfError, match="needs metrics"):
        parse_exporter_config({"programs": [{"name": "one", "static_maps": {"a": {}}}]})


def test_file_mode_accepts_octal_text_and_numbers():
    assert parse_exporter_config({"file_mode": "0640"}).file_mode == 0o640
    assert parse_exporter_config({"file_mode": 0o600}).file_mode == 0o600


# ------------------------------------------------------------------------------ schedule

def test_passes_keep_to_their_slots_and_skip_missed_ones():
    loop = exporter_cli.Loop(None, 15.0)
    assert loop.next_start(100.0, 100.2) == 115.0  # a short pass waits for the next slot
    assert loop.next_start(100.0, 115.0) == 130.0
    assert loop.next_start(100.0, 146.0) == 160.0  # an overrun skips the slots it missed


# ------------------------------------------------------------------------------ textfile

def test_write_atomic_replaces_the_file_with_its_mode(tmp_path):
    path = tmp_path / "m.prom"
    path.write_text("old\n")
    write_atomic(str(path), "new\n", 0o640)
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["m.prom"]


def test_write_atomic_writes_chunks_and_fsyncs_only_when_durable(tmp_path, monkeypatch):
    path = tmp_path / "m.prom"
    synced = []
    monkeypatch.setattr(os, "fsync", synced.append)
    write_atomic(str(path), [b"a\n", b"", "\u00e9\n".encode("utf-8")], durable=False)
    assert path.read_bytes() == b"a\n\xc3\xa9\n" and not synced
    write_atomic(str(path), "new\n")
    assert path.read_text() == "new\n" and len(synced) == 2  # the file, then its directory


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "m.prom"
    path.mkdir()  # rename onto a directory fails
    with pytest.raises(BpfError, match="cannot write"):
        write_atomic(str(path), "new\n")
    assert os.listdir(tmp_path) == ["m.prom"]


def test_stale_temporaries_of_this_file_only_are_removed(tmp_path):
    for name in (".m.prom.abc123", ".m.prom.x", ".other.prom.abc", "m.prom", "keep"):
        (tmp_path / name).write_text("")
    assert sorted(remove_stale_temporaries(str(tmp_path / "m.prom"))) == [".m.prom.abc123", ".m.prom.x"]
    assert sorted(os.listdir(tmp_path)) == [".other.prom.abc", "keep", "m.prom"]


# ------------------------------------------------------------------------------ pin access

def _tree(root):
    """An object's pin layout on an ordinary filesystem, modes as bpffs creates them."""
    for sub in ("progs", "maps", "links"):
        os.makedirs(os.path.join(root, "obj", sub), 0o700)
    for pin in ("progs/p", "maps/m", "links/l", "state"):
        with open(os.path.join(root, "obj", pin), "w"):
            pass
        os.chmod(os.path.join(root, "obj", pin), 0o600)
    os.chmod(root, 0o700)
    os.chmod(os.path.join(root, "obj"), 0o700)


def _mode(path):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_gid


@pytest.mark.skipif(os.geteuid() != 0, reason="changes group ownership")
def test_grant_gives_the_group_read_access_to_link_names_but_not_to_links(tmp_path):
    root = str(tmp_path / "pins")
    _tree(root)
    gid = 4242
    assert grant_pin_access(root, ["obj", "absent"], gid, check_mode=True)
    assert _mode(os.path.join(root, "obj", "maps", "m")) == (0o600, os.getegid())
    changes = grant_pin_access(root, ["obj", "absent"], gid)
    assert len(changes) == 8  # root, obj, state, progs, progs/p, maps, maps/m, links
    assert _mode(root) == (0o710, gid)
    for path in ("obj", "obj/progs", "obj/maps", "obj/links"):
        assert _mode(os.path.join(root, path)) == (0o750, gid)
    for path in ("obj/state", "obj/progs/p", "obj/maps/m"):
        assert _mode(os.path.join(root, path)) == (0o640, gid)
    assert _mode(os.path.join(root, "obj", "links", "l")) == (0o600, os.getegid())  # a link opens read-write only
    assert grant_pin_access(root, ["obj"], gid) == []


def test_grant_names_a_missing_group(tmp_path):
    with pytest.raises(BpfError, match="group 'no-such-group-ebpft' does not exist"):
        grant_pin_access(str(tmp_path), ["obj"], "no-such-group-ebpft")


# ------------------------------------------------------------------------------ exporter

def _exporter(tmp_path, programs=()):
    return Exporter(parse_exporter_config({"pin_root": str(tmp_path / "pins"), "textfile": str(tmp_path / "m.prom"),
                                           "attach_events": str(tmp_path / "events.json"), "programs": list(programs)}),
                    bpf_stats_path=str(tmp_path / "no-sysctl"))


def test_two_objects_share_a_metric_when_labels_agree(tmp_path):
    exporter = _exporter(tmp_path)
    families = {}
    for values in ({("x",): 1, ("y",): 2}, {("x",): 10}):
        family = MetricFamily("m_total", "h", "counter", ("a",))
        family.series.update(values)
        exporter._merge(families, family, "p")  # pylint: disable=protected-access
    assert families["m_total"].series == {("x",): 11, ("y",): 2}
    hist = [MetricFamily("h", "h", "histogram", ("a",), ("1", "2")) for _family in range(2)]
    hist[0].series[("x",)] = ((1, 3), 5.0)
    hist[1].series[("x",)] = ((2, 2), 1.0)
    for family in hist:
        exporter._merge(families, family, "p")  # pylint: disable=protected-access
    assert families["h"].series[("x",)] == ((3, 5), 6.0)
    other = MetricFamily("m_total", "h", "counter", ("b",))
    other.series[("z",)] = 1
    with pytest.raises(BpfError, match="other labels"):
        exporter._merge(families, other, "q")  # pylint: disable=protected-access


def test_a_program_that_is_not_loaded_is_an_error_metric_not_a_failure(tmp_path, caplog):
    exporter = _exporter(tmp_path, [{"name": "gone", "metrics": METRICS}])
    caplog.set_level(logging.INFO, logger="ebpf_observability.exporter")
    for _pass in range(2):
        families = dict((f.name, f) for f in exporter.collect())
    assert families["ebpf_exporter_map_errors_total"].series == {("gone", "c_total"): 2}
    assert families["ebpf_exporter_last_success_timestamp_seconds"].series == {(): 0.0}
    assert "ebpf_programs_loaded" in families and not families["ebpf_programs_loaded"].series
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["gone/c_total: program gone is not loaded (nothing under %s/gone): load it with "
                        "ebpf_program name=gone" % (tmp_path / "pins")]  # logged once, not at every pass


def test_a_cleared_problem_is_logged_as_recovered(tmp_path, caplog):
    exporter = _exporter(tmp_path)
    caplog.set_level(logging.INFO, logger="ebpf_observability.exporter")
    exporter._problem(("map", "p", "m"), "broken")  # pylint: disable=protected-access
    exporter.collect()
    assert [r.getMessage() for r in caplog.records] == ["broken", "recovered: broken"]
    assert exporter.problems == {}


# ------------------------------------------------------------------------------ command line

def test_command_line_modes(tmp_path, capsys, caplog):
    config = tmp_path / "exporter.yml"
    config.write_text("textfile: %s\nprograms:\n  - name: one\n    metrics_file: %s\n" % (tmp_path / "m.prom", tmp_path / "m.yaml"))
    (tmp_path / "m.yaml").write_text("metrics:\n  counters:\n    - name: c_total\n      help: h\n      labels: []\n")
    assert exporter_cli.main(["--config", str(config), "--check-config"]) == 0
    assert "1 program(s), 1 with metrics" in capsys.readouterr().out
    (tmp_path / "m.yaml").write_text("tracing:\n  spans: []\nmetrics:\n  counters:\n    - name: c_total\n      help: h\n")
    assert exporter_cli.main(["--config", str(config), "--check-config"]) == 0
    assert "one: OpenTelemetry tracing (the 'tracing' section) is not supported; its metrics are exported" \
        in capsys.readouterr().out
    (tmp_path / "m.yaml").write_text("tracing:\n  spans: []\n")
    assert exporter_cli.main(["--config", str(config), "--check-config"]) == 1
    assert "is not supported; its metrics are exported, and this config has no metrics" in caplog.text
    (tmp_path / "m.yaml").write_text("metrics: [")
    assert exporter_cli.main(["--config", str(config), "--check-config"]) == 1
    with pytest.raises(SystemExit):
        exporter_cli.parse_args(["--stdout"])
    with pytest.raises(SystemExit):
        exporter_cli.parse_args(["--interval", "0"])


# ------------------------------------------------------------------------------ self metrics

PROGRAMS = [
    ("xdp_counter", "xdp_counter", {"id": 7, "type_name": "xdp", "tag": "ab12", "run_cnt": 5, "run_time_ns": 2000000000,
                                    "recursion_misses": 0}),
    ("lat", "enter", {"id": 8, "type_name": "raw_tracepoint", "tag": "cd34", "run_cnt": 0, "run_time_ns": 0,
                      "recursion_misses": 3}),
]


def test_self_metrics_under_both_names():
    families = dict((f.name, f) for f in program_families(PROGRAMS, stats_enabled=False))
    assert families["ebpf_exporter_enabled_configs"].series == {("xdp_counter",): 1, ("lat",): 1}
    assert families["ebpf_exporter_ebpf_program_info"].label_names == ("config", "id", "program", "tag")
    assert families["ebpf_exporter_ebpf_program_info"].series == {("xdp_counter", "7", "xdp_counter", "ab12"): 1,
                                                                  ("lat", "8", "enter", "cd34"): 1}
    assert families["ebpf_exporter_ebpf_program_run_count_total"].series == {("7",): 5, ("8",): 0}
    assert families["ebpf_exporter_ebpf_program_run_time_seconds"].series == {("7",): 2.0, ("8",): 0.0}
    assert families["ebpf_program_misses_total"].series == {("xdp_counter", "xdp_counter", "xdp"): 0,
                                                            ("lat", "enter", "raw_tracepoint"): 3}
    assert families["ebpf_programs_loaded"].series == {("xdp",): 1, ("raw_tracepoint",): 1}
    assert "ebpf_program_run_count_total" not in families  # only while bpf stats are enabled
    on = dict((f.name, f) for f in program_families(PROGRAMS, stats_enabled=True))
    assert on["ebpf_program_run_count_total"].series == {("xdp_counter", "xdp_counter", "xdp"): 5,
                                                         ("lat", "enter", "raw_tracepoint"): 0}


def test_attached_is_unknown_rather_than_zero_when_links_cannot_be_listed():
    assert attached_family(PROGRAMS, {7}, complete=True).series == {("7",): 1, ("8",): 0}
    assert attached_family(PROGRAMS, {7}, complete=False).series == {("7",): 1}


def test_decoder_errors_carry_their_config_and_ebpf_exporters_zero_series():
    errors = {"a": DecoderErrors(), "b": DecoderErrors()}
    errors["a"].add("m_total", "uint", 2)
    family = decoder_errors_family(errors)
    assert family.label_names == ("config", "metric", "decoder")
    assert family.series == {("a", "", ""): 0, ("a", "m_total", "uint"): 2, ("b", "", ""): 0}


def test_link_pin_names_say_what_is_attached_where(tmp_path):
    links = tmp_path / "obj" / "links"
    links.mkdir(parents=True)
    for name in ("count-tc-eth0-ingress", "count-tc-gone0-egress", pin_key("count", "tc", "eth0.100", "egress"),
                 "enter-raw_tracepoint-sys_enter", pin_key("enter", "kprobe", "do_sys_open+0x4"),
                 "other-kprobe-vfs_read", "count-xdp-eth0", "btf-tp_btf-sys_enter",
                 pin_key("clock", "perf_event", "type=1,config=0,frequency=99", "cpu0"),
                 pin_key("clock", "perf_event", "type=1,config=0,frequency=99", "cpu1")):
        (links / name).write_text("")
    programs = {"count": {"id": 7}, "enter": {"id": 8}, "btf": {"id": 9}, "clock": {"id": 10}}
    found = pinned_link_attachments(str(tmp_path / "obj"), programs, interfaces=["lo", "eth0", "eth0.100"])
    assert sorted((a["prog_id"], a["interface"]) for a in found) == [
        (7, "eth0"), (7, "eth0.100"), (8, ""), (8, ""), (9, ""), (10, ""), (10, "")]
    assert pinned_link_attachments(str(tmp_path / "none"), programs) == []
