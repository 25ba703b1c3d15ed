# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Strict option types: a value that is not a string where a module declares ``str`` or
``path``, at any depth (list elements, sub-options), is an error naming its path.

Ansible converts such values silently (a list given for a name becomes the string "['a']"), so
a module would act on a value nobody wrote. The options as they reached the module, before that
conversion, are walked against the argument spec; the module fails before anything changes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

STRING_TYPES = ("str", "path")
_JSON_NAMES = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "a mapping"}


def _kind(value):
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _check_value(kind, elements, suboptions, value, path, errors):
    if kind in STRING_TYPES:
        if not isinstance(value, str):
            errors.append("%s must be a string, not %s (%r)" % (path, _kind(value), value))
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            if item is not None:
                _check_value(elements, None, suboptions, item, "%s[%d]" % (path, i), errors)
    elif kind == "dict" and suboptions:
        if isinstance(value, dict):
            errors.extend(type_errors(suboptions, value, path + "."))
        else:  # Ansible's own message for it would not name the option
            errors.append("%s must be a mapping, not %s (%r)" % (path, _kind(value), value))


def type_errors(spec, raw, prefix=""):
    """Messages for every value in ``raw`` (options as given) that ``spec`` declares a string
    but is not one; [] when all fit. Other types are left to Ansible's own checks, which fail
    on values they cannot convert."""
    errors = []
    if not isinstance(raw, dict):
        return errors
    for name, opt in sorted(spec.items()):
        for key in [name] + list(opt.get("aliases") or []):
            value = raw.get(key)
            if value is None:
                continue
            _check_value(opt.get("type", "str"), opt.get("elements"), opt.get("options"), value, prefix + key, errors)
    return errors


def raw_params():
    """The module's options as the controller sent them (before Ansible's conversions)."""
    from ansible.module_utils import basic
    return basic._load_params()


def _fail_on_wrong_types(argument_spec, failing_module):
    """Fail through ``failing_module()`` (made only then) when an option of ``argument_spec`` has
    the wrong type."""
    errors = type_errors(argument_spec, raw_params())
    if errors:
        failing_module().fail_json(msg="wrong option type: %s; nothing was changed" % "; ".join(errors))


def check_module(module):
    """Fail the module (before it changes anything) when an option has the wrong type."""
    _fail_on_wrong_types(module.argument_spec, lambda: module)


def check_before_conversion(argument_spec, module_class):
    """The same check before the module is made with ``argument_spec``, for a spec with mappings
    of sub-options (whose conversion errors Ansible reports without the option's name): a wrong
    type fails through a module that converts nothing. The module made afterwards is not checked
    again (run_backend's ``types_checked``)."""
    _fail_on_wrong_types(argument_spec, lambda: module_class(
        argument_spec=dict((name, {"type": "raw"}) for name in argument_spec), supports_check_mode=True))
