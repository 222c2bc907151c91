"""A real Pactum suite for the SDK's tests: scripts/up.sh (nats-server with TLS and a JWT
per user, the four services, the HTTP gateway) on free loopback ports with its data in a
temporary folder, stopped by process group at the end."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..")))


@pytest.fixture(scope="session")
def suite():
    var = tempfile.mkdtemp(prefix="pactum-sdk-py-")
    log = open(os.path.join(var, "up.log"), "wb")
    env = dict(os.environ, PACTUM_VAR=var,
               PACTUM_BUILD=os.environ.get("PACTUM_BUILD", os.path.join(ROOT, "build")))
    proc = subprocess.Popen([os.path.join(ROOT, "scripts", "up.sh")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    ready = os.path.join(var, "suite.env")
    deadline = time.monotonic() + 600
    while not os.path.exists(ready) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        if not os.path.exists(ready):
            with open(os.path.join(var, "up.log"), encoding="utf-8", errors="replace") as f:
                pytest.fail("the suite did not start:\n" + f.read()[-4000:])
        with open(ready, encoding="utf-8") as f:
            values = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        values["PACTUM_VAR"] = var
        yield values
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(var, ignore_errors=True)


def cli(suite, *args):
    """The C CLI against the suite, as the enroll user; its stdout."""
    env = dict(os.environ, PACTUM_NATS_URL=suite["PACTUM_NATS_URL"],
               PACTUM_NATS_CA=suite["PACTUM_NATS_CA"], PACTUM_NATS_CREDS=suite["PACTUM_NATS_CREDS"])
    r = subprocess.run([suite["PACTUM_CLI"], *args], env=env, capture_output=True, text=True,
                       timeout=60, cwd=suite["PACTUM_VAR"])
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout
