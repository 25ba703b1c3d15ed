# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A counter's series from a map read as columns (MapColumns), rendered without an object per
entry; the text is what TextRenderer writes for the same series (see collector).

A pass cuts every label out of the keys buffer as one column (a strided view of the buffer
where the label is a 1-, 2-, 4- or 8-byte integer at an aligned offset), decodes each column's
distinct values through the label's LabelDecoder, and sums the per-CPU values column by column
(families.u64_sums). The series are sorted by their text without building it for each entry:
each label's distinct values are ranked once, and a series' place is the number its ranks make
(label names sorted, as in the text). The text of all series is one %-template of UTF-8 bytes,
filled with the values in one operation (bytes formatting is faster than str formatting, and the
textfile is written as these bytes with no encoding step).

What a pass builds is kept with the keys it was built from: the next pass whose keys are the
same bytes in the same order (a map whose set of keys did not change) only sums the values and
fills the template. A pass in which a decoder failed keeps nothing (failed values are decoded
again, and counted, at every pass). Entries that decode to one label set are left to the
collector's general path, which sums them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import operator
import sys
from array import array
from collections import deque
from itertools import chain, compress, islice, product, repeat

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import SKIP
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import (
    VALUE_SIZE, cpu_slots, escape_label, u64_sum_column,
)

_INT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}
_LINE_END = "} %d\n"


def _text_order(value):
    # Two series' texts first differ inside the first label value that differs; comparing
    # escaped value + closing quote there orders them as their whole texts do.
    return escape_label(value) + '"'


def _getter(positions):
    """f(sequence) -> tuple of its items at positions (itemgetter, also for 0 or 1 position)."""
    if len(positions) == 1:
        position = positions[0]
        return lambda items: (items[position],)
    if not positions:
        return lambda items: ()
    return operator.itemgetter(*positions)


class RenderedSeries:
    """A family's series as text lines (what MetricFamily.set_columns holds)."""

    __slots__ = ("count", "text", "_layout", "_values")

    def __init__(self, layout, values):
        self.count = len(values)
        self.text = layout.template % values if values else b""  # UTF-8
        self._layout = layout
        self._values = values

    def series(self):
        """{label values (config order): value}, built when asked for."""
        layout = self._layout
        columns = [map(texts.__getitem__, ranks) for texts, ranks in zip(layout.texts, layout.ranks)]
        return dict(zip(zip(*columns), self._values))


class _Layout:
    """What a pass built from one keys buffer: where each series' value is, and the template."""

    __slots__ = ("keys", "pick", "template", "texts", "ranks", "merged")

    def __init__(self, keys, pick=None, template=b"", texts=(), ranks=(), merged=False):
        self.keys = keys
        self.pick = pick  # batch values -> series values in output order
        self.template = template
        self.texts = texts  # per label (config order): label values by rank
        self.ranks = ranks  # per label (config order): ranks of the series in output order
        self.merged = merged  # entries share label sets: the collector's general path sums them


class CounterColumns:
    """Renders one counter (with labels) from MapColumns; keep one per metric (see module doc)."""

    def __init__(self, full_name, labels, label_decoders, label_names):
        self.full_name = full_name
        self.layout = []  # (offset, size, LabelDecoder) in config order
        offset = 0
        for label, decoder in zip(labels, label_decoders):
            self.layout.append((offset, label.size, decoder))
            offset += label.size + label.padding
        self.key_size = offset
        self.names = tuple(label_names)
        self.output = sorted(range(len(self.names)), key=self.names.__getitem__)  # labels in text order
        self._last = None

    def collect(self, columns, errors, metric):
        """RenderedSeries of the columns, or None when entries share label sets (the caller sums
        them). Decoder failures are counted in errors (a DecoderErrors) under ``metric``;
        BpfError when the values are not u64 (per CPU)."""
        count = columns.count
        slots = cpu_slots(len(columns.values) // count, columns.value_size) if columns.percpu else 1
        if len(columns.values) != count * slots * VALUE_SIZE:
            raise BpfError("map values of %d bytes are not u64" % (len(columns.values) // count))
        last = self._last
        if last is None or last.keys != columns.keys:
            failures = {}
            last = self._build(columns, failures)
            for decoder, failed in failures.items():
                errors.add(metric, decoder, failed)
            self._last = None if failures else last
        if last.merged:
            return None
        return RenderedSeries(last, last.pick(u64_sum_column(columns.values, count, slots)))

    def _build(self, columns, failures):
        keys = columns.keys
        count = columns.count
        raw_columns, outcomes = [], []
        for offset, size, decoder in self.layout:
            column, to_raw = _column(keys, count, self.key_size, offset, size)
            raws = dict((value, to_raw(value)) for value in set(column))
            decoded, _any_dropped = decoder.lookup(list(raws.values()))
            raw_columns.append(column)
            outcomes.append(dict((value, decoded[raw]) for value, raw in raws.items()))
        kept = _kept_rows(raw_columns, outcomes, failures)
        if kept is not None:
            take = _getter(kept)
            raw_columns = [take(column) for column in raw_columns]
        texts, rank_ofs = [], []
        for outcome in outcomes:
            good = dict((value, text) for value, text in outcome.items() if text.__class__ is str)
            ordered = sorted(set(good.values()), key=_text_order)
            rank_of_text = dict((text, rank) for rank, text in enumerate(ordered))
            texts.append(ordered)
            rank_ofs.append(dict((value, rank_of_text[text]) for value, text in good.items()))
        ordered = self._order(texts, rank_ofs, raw_columns, len(raw_columns[0]))
        if ordered is None:
            return _Layout(keys, merged=True)
        rows, sorted_ranks = ordered
        positions = _getter(rows)(kept) if kept is not None else rows
        return _Layout(keys, _getter(positions), self._template(texts, sorted_ranks), texts, sorted_ranks)

    def _order(self, texts, rank_ofs, raw_columns, count):
        """(the rows in output order, each label's ranks in that order), or None when two rows
        have one label set.

        A row's place is the number its ranks make, digits in output label order (each label's
        rank_of maps a raw value to its rank); the places sort the rows. Where there are not many
        more possible places than rows (a dense grid), each row is put in its slot of an array
        of them all, and the ranks in place order are the grid's; else rows are sorted by place
        and row index as one number, and the ranks come back from the places by division. Past
        a few hundred thousand rows, memory read at random positions (objects in the order of
        another list) costs several times what reading in order does: nothing after the
        slotting or the sort reads at random.
        """
        if not count:
            return [], [[] for _texts in texts]
        span, place = 1, None
        for label in self.output[::-1]:  # the last label is the lowest digit
            digit = dict((value, rank * span) for value, rank in rank_ofs[label].items())
            digits = map(digit.__getitem__, raw_columns[label])
            place = digits if place is None else map(operator.add, digits, place)
            span *= len(texts[label])
        place = list(place)
        sorted_ranks = [None] * len(texts)
        if span <= 4 * count + 64:
            slots = array("q", [-1]) * span  # a machine array: no object per slot to chase later
            deque(map(slots.__setitem__, place, range(count)), 0)
            holes = slots.count(-1)
            if span - holes != count:
                return None
            filled = list(map((-1).__ne__, slots)) if holes else None
            rows = list(compress(slots, filled)) if holes else slots.tolist()
            stride = 1
            for label in self.output[::-1]:  # every place in order: each rank repeated, tiled
                radix = len(texts[label])
                grid = list(chain.from_iterable(map(repeat, range(radix), repeat(stride)))) * (span // (radix * stride))
                sorted_ranks[label] = list(compress(grid, filled)) if holes else grid
                stride *= radix
            return rows, sorted_ranks
        keyed = sorted(map(operator.add, map(operator.mul, place, repeat(count)), range(count)))
        rows = list(map(operator.mod, keyed, repeat(count)))
        places = list(map(operator.floordiv, keyed, repeat(count)))
        if any(map(operator.eq, places, islice(places, 1, None))):
            return None
        for label in self.output[:0:-1]:
            radix = len(texts[label])
            sorted_ranks[label] = list(map(operator.mod, places, repeat(radix)))
            places = list(map(operator.floordiv, places, repeat(radix)))
        sorted_ranks[self.output[0]] = places
        return rows, sorted_ranks

    def _template(self, texts, sorted_ranks):
        """The lines of the series (in output order) with %d where each value goes, UTF-8.

        Where every combination of label values is a series (a full grid), the lines are the
        combinations in order: each combination of the other labels' pieces is joined with the
        last label's pieces in one operation, rather than a piece put in place per series."""
        width = len(self.output) + 1
        count = len(sorted_ranks[0])
        pieces = []
        for slot, label in enumerate(self.output):
            head = "%s{" % self.full_name if slot == 0 else ","
            pieces.append(['%s%s="%s"' % (head, self.names[label], escape_label(text).replace("%", "%%"))
                           for text in texts[label]])
        if count == functools.reduce(operator.mul, map(len, pieces), 1):
            lines = [prefix + (_LINE_END + prefix).join(pieces[-1]) + _LINE_END
                     for prefix in map("".join, product(*pieces[:-1]))]
            text = "".join(lines)
            del lines  # not held while the text is encoded (the peak memory of a first pass)
            return text.encode("utf-8")
        parts = [_LINE_END] * (count * width)
        for slot, label in enumerate(self.output):
            parts[slot::width] = map(pieces[slot].__getitem__, sorted_ranks[label])
        return "".join(parts).encode("utf-8")


def _column(keys, count, key_size, offset, size):
    """One label's bytes of every key, and how to get a value's bytes back: integers cut out of
    the buffer as a strided view where the label is an aligned 1/2/4/8-byte field, else bytes."""
    fmt = _INT_FORMATS.get(size)
    if fmt is not None and key_size % size == 0 and offset % size == 0:
        view = memoryview(keys)[:count * key_size].cast(fmt)
        return view[offset // size::key_size // size].tolist(), lambda value: value.to_bytes(size, sys.byteorder)
    return [keys[start:start + size] for start in range(offset, count * key_size, key_size)], bytes


def _kept_rows(raw_columns, outcomes, failures):
    """Positions of the rows every label decoded (None: all of them); a row's first label that
    did not decode (in config order) says whether it was skipped or failed (counted)."""
    bad = [dict((value, outcome) for value, outcome in column.items() if outcome.__class__ is not str)
           for column in outcomes]
    if not any(bad):
        return None
    kept = []
    for index, row in enumerate(zip(*raw_columns)):
        for label, value in enumerate(row):
            outcome = bad[label].get(value)
            if outcome is not None:
                if outcome is not SKIP:
                    failures[outcome.decoder] = failures.get(outcome.decoder, 0) + 1
                break
        else:
            kept.append(index)
    return kept
