"""Helpers of the decoder tests: a label's decoder chain through the config parser, and decoding
key bytes with it."""
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import parse_metrics_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import Decoders


def label_of(decoders, size=8):
    """A LabelConfig with this decoder chain (config dicts or decoder names), through the parser."""
    decoders = [{"name": d} if isinstance(d, str) else d for d in decoders]
    config = {"metrics": {"counters": [{"name": "m", "help": "h", "labels": [
        {"name": "l", "size": size, "decoders": decoders}]}]}}
    return parse_metrics_config(config).counters[0].labels[0]


def decode(chain, raw, decoders=None):
    """Decode raw bytes through a chain given as config dicts (or decoder names)."""
    return (decoders or Decoders()).label_decoder(label_of(chain, len(raw) or 1)).decode(raw)
