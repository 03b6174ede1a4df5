"""Certificates for the HTTPS rows, made by the bench itself with openssl (nothing to provide)."""
import os
import ssl
import subprocess


def self_signed(run_dir):
    """(cert, key) PEM paths in run_dir: a P-256 ECDSA certificate for 127.0.0.1/localhost, as certbot issues by
    default, valid two days. Both servers under test get the same kind of key, so the handshake costs compare."""
    cert, key = os.path.join(run_dir, "cert.pem"), os.path.join(run_dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def client_context():
    """The harness's own checks talk to a self-signed server: no verification (wrk does not verify either)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
