"""Stand-in for the get-pip.py bootstrap that ansible-test downloads into its sanity venvs.

ansible-test fetches get-pip.py from a host outside the package index, which this project's
machines cannot reach. It runs the cached script as ``python get_pip.py [pip options] pip==X
setuptools==Y wheel==Z [--no-setuptools] [--no-wheel]``; this does the same with the
interpreter's own ensurepip and the package index. The venv's pip is told to trust the
system's CA bundle (the one the host's own pip is configured with), as ansible-test runs pip
with a reduced environment.
"""
import ensurepip
import os
import subprocess
import sys

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if os.path.exists(SYSTEM_CA):
    with open(os.path.join(sys.prefix, "pip.conf"), "w") as conf:
        conf.write("[global]\ncert = %s\n" % SYSTEM_CA)
ensurepip.bootstrap()
env = dict(os.environ)
if os.path.exists(SYSTEM_CA):
    env["PIP_CERT"] = SYSTEM_CA
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args, env=env)
