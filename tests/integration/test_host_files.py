"""ebpf_host with kernel=false (what the exporter role converges in one run), on this host: a
system user and group made by shadow's tools, directories with owner and mode, files checked by
their validate command before they replace the old ones, nothing changed while the host still
lacks a file's content (with kernel=true too: no directory made, nothing mounted), check mode,
and removal."""
import base64
import grp
import hashlib
import os
import pwd
import subprocess
import sys

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host import HostBackend
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

JSON_CHECK = "%s -c 'import json, sys; json.load(open(sys.argv[1]))' %%s" % sys.executable


def spec(dest, text, key, **extra):
    return dict({"dest": dest, "checksum": hashlib.sha1(text.encode()).hexdigest(), "key": key, "mode": "0644",
                 "unit": False, "validate": None}, **extra)


def params(files=(), contents=None, state="present", **extra):
    p = {"state": state, "kernel": False, "restart": False, "files": list(files), "contents": contents or {},
         "units": [], "absent_files": [], "account": None, "directories": [], "grant_access": None}
    p.update(extra)
    return p


def run(check_mode=False, **kwargs):
    return HostBackend(params(**kwargs), check_mode=check_mode).run()


def sent(*pairs):
    return dict((key, base64.b64encode(text.encode()).decode()) for key, text in pairs)


@pytest.fixture
def account(request):
    name = "ebpft-hf-%d" % os.getpid()
    yield {"user": name, "group": name, "groups": []}
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(["groupdel", name], capture_output=True, check=False)


def exists(lookup, name):
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def test_account_and_directory_check_real_check_real_then_absent(tmp_path, account):
    textfile_dir = str(tmp_path / "textfile")
    directories = [{"path": textfile_dir, "mode": "0775", "owner": "root", "group": account["group"], "create": True,
                    "made_by": None}]
    res = run(check_mode=True, account=account, directories=directories)
    assert res["changed"] and not exists(grp.getgrnam, account["group"]) and not os.path.exists(textfile_dir)

    res = run(account=account, directories=directories)
    assert [(i["step"], i["changed"]) for i in res["items"]] == [("group", True), ("user", True), ("directory", True)]
    user = pwd.getpwnam(account["user"])
    assert user.pw_gid == grp.getgrnam(account["group"]).gr_gid and user.pw_shell == "/usr/sbin/nologin"
    st = os.stat(textfile_dir)
    assert (st.st_mode & 0o7777, st.st_gid) == (0o775, user.pw_gid)

    assert not run(check_mode=True, account=account, directories=directories)["changed"]
    os.chmod(textfile_dir, 0o700)  # drift is mended
    res = run(account=account, directories=directories)
    assert [i["step"] for i in res["items"] if i["changed"]] == ["directory"]
    assert os.stat(textfile_dir).st_mode & 0o7777 == 0o775

    res = run(state="absent", account=account, directories=directories)
    assert not exists(pwd.getpwnam, account["user"]) and not exists(grp.getgrnam, account["group"])
    assert not os.path.exists(textfile_dir)


def test_supplementary_groups_are_added_never_removed(account):
    other = account["user"] + "x"
    subprocess.run(["groupadd", "--system", other], check=True)
    try:
        run(account=account)
        assert account["user"] not in grp.getgrnam(other).gr_mem
        res = run(account=dict(account, groups=[other]))
        assert [i for i in res["items"] if i["step"] == "user"][0]["groups"] == [other]
        assert account["user"] in grp.getgrnam(other).gr_mem
        assert not run(account=account)["changed"]  # not taken away
        with pytest.raises(BpfError, match="the groups nosuchgroup-x do not exist"):
            run(account=dict(account, groups=["nosuchgroup-x"]))
    finally:
        subprocess.run(["userdel", account["user"]], capture_output=True, check=False)
        subprocess.run(["groupdel", other], capture_output=True, check=False)


def test_a_file_is_replaced_only_when_its_validate_command_accepts_it(tmp_path):
    dest = str(tmp_path / "config.json")
    good, bad = '{"a": 1}\n', '{"a": \n'
    first = run(files=[spec(dest, good, "files/0", validate=JSON_CHECK)])
    assert first == {"changed": False, "needs": ["files/0"]} and not os.path.exists(dest)
    assert run(files=[spec(dest, good, "files/0", validate=JSON_CHECK)], contents=sent(("files/0", good)))["changed"]
    with pytest.raises(BpfError, match="(?s)failed its check .*JSONDecodeError"):
        run(files=[spec(dest, bad, "files/0", validate=JSON_CHECK)], contents=sent(("files/0", bad)))
    with open(dest, encoding="utf-8") as f:
        assert f.read() == good  # the host as before
    assert sorted(os.listdir(str(tmp_path))) == ["config.json"]  # no copy left behind
    with pytest.raises(BpfError, match="must name the file to check as %s"):
        run(files=[spec(dest, bad, "files/0", validate="/bin/true")], contents=sent(("files/0", bad)))


def test_nothing_changes_while_the_host_lacks_a_files_content(tmp_path, account):
    dest = str(tmp_path / "config.json")
    res = run(account=account, directories=[{"path": str(tmp_path / "d"), "mode": "0755", "owner": None,
                                             "group": None, "create": True, "made_by": None}],
              files=[spec(dest, "{}", "files/0")])
    assert res == {"changed": False, "needs": ["files/0"]}
    assert not exists(grp.getgrnam, account["group"]) and not os.path.exists(str(tmp_path / "d"))


def test_a_directory_another_role_manages_must_exist(tmp_path):
    missing = {"path": str(tmp_path / "nope"), "mode": "0755", "owner": None, "group": None, "create": False,
               "made_by": "the node_exporter role"}
    with pytest.raises(BpfError) as e:
        run(directories=[missing])
    assert "nope is not a directory" in str(e.value) and "node_exporter role must run first" in str(e.value)
    assert not run(check_mode=True, directories=[missing])["changed"]  # that role may not have run yet


def test_pin_access_in_check_mode_before_the_group_exists(pin_root, account):
    os.makedirs(pin_root, mode=0o700, exist_ok=True)
    os.chmod(pin_root, 0o700)  # as the collection makes it: the group needs search permission
    access = {"pin_root": pin_root, "group": account["group"], "programs": ["xdp_counter"]}
    res = run(check_mode=True, account=account, grant_access=access)
    assert [i["step"] for i in res["items"]] == ["group", "user", "access"] and res["changed"]
    res = run(account=account, grant_access=access)
    assert [i for i in res["items"] if i["step"] == "access"][0]["changed"]
    assert os.stat(pin_root).st_gid == grp.getgrnam(account["group"]).gr_gid
    assert not run(account=account, grant_access=access)["changed"]


def test_the_programs_run_changes_nothing_while_the_host_lacks_a_files_content(tmp_path):
    dirs = {"install_dir": str(tmp_path / "lib"), "config_dir": str(tmp_path / "etc")}
    res = run(kernel=True, programs=[], catalog={}, objects={}, bpffs="/sys/fs/bpf", bpffs_options="", prune=False,
              files=[spec(str(tmp_path / "etc" / "extra.conf"), "x", "files/0")], **dirs)
    assert res == {"changed": False, "needs": ["files/0"]}
    assert not any(os.path.exists(path) for path in dirs.values())
