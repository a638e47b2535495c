"""Ed25519 signatures on bundles: who may publish what the runtime serves.

A bundle's checksum stops accidents, not an attacker: anyone who can write
the bundle folder can write a bundle with a valid checksum. With a key pair,
the publisher signs and the runtime refuses what the private key did not sign.

The signature is over the bundle's checksum, a SHA-256 of the whole header
(its signature aside) and the whole payload (rules, lexicon, compiled state),
so it covers every byte the runtime reads. The header names the signing key
(``signing_key``: a fingerprint of the public key), so a refusal can say
"signed with another key" rather than only "does not verify".

Keys are files: the private key PKCS#8 PEM, mode 0600, the public key
SubjectPublicKeyInfo PEM (:func:`generate_keys`). ``cryptography`` is imported
only when a key is used, so a runtime without one loads nothing more.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rulelife._files import atomic_write
from rulelife.errors import BundleError, BundleIntegrityError, ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["PRIVATE_KEY_FILE", "PUBLIC_KEY_ENV", "PUBLIC_KEY_FILE", "fingerprint", "generate_keys",
           "load_private_key", "load_public_key", "sign_checksum", "verify_checksum"]

PRIVATE_KEY_FILE = "bundle-signing.key"
PUBLIC_KEY_FILE = "bundle-signing.pub"
# The runtime's public key when none is passed to RuleClassifier: a service
# configures it where it configures the bundle folder.
PUBLIC_KEY_ENV = "RULELIFE_BUNDLE_PUBLIC_KEY"
# Signed: this prefix and the checksum, so a signature over anything else
# (another protocol's message under the same key) never passes for a bundle's.
_DOMAIN = b"rulelife bundle checksum v1\n"

log = logging.getLogger(__name__)


def generate_keys(folder: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair into ``folder``; return (private, public) paths.

    The private key is written mode 0600 (only its owner reads it); an
    existing key is never overwritten.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder = Path(folder)
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    existing = [str(p) for p in (private_path, public_path) if p.exists()]
    if existing:
        raise ConfigError(f"{' and '.join(existing)} already exist(s); keys are never overwritten: "
                          "choose another --out folder, or remove the old pair once no runtime trusts it")
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(private_path, private, mode=0o600)
    atomic_write(public_path, public)
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``; ConfigError says what is wrong."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    data = _read(path, "bundle signing key")
    if os.stat(path).st_mode & 0o077:
        log.warning("the bundle signing key %s is readable by other users; chmod 600 it", path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key ({exc}); "
                          "make a key pair with `rulelife bundle keygen --out DIR`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 key; "
                          "make a key pair with `rulelife bundle keygen --out DIR`")
    return key


def load_public_key(key: Ed25519PublicKey | Path | str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from a key object, PEM bytes, or the path of a PEM file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key
    where = "the public key given"
    if isinstance(key, (str, Path)):
        where = str(key)
        key = _read(Path(key), "bundle public key")
    try:
        loaded = serialization.load_pem_public_key(key)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where} is not a PEM public key ({exc}); use the {PUBLIC_KEY_FILE} that "
                          "`rulelife bundle keygen` wrote") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise ConfigError(f"{where} holds a {type(loaded).__name__}, not an Ed25519 key; use the "
                          f"{PUBLIC_KEY_FILE} that `rulelife bundle keygen` wrote")
    return loaded


def fingerprint(key: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_checksum(key: Ed25519PrivateKey, checksum: str) -> str:
    """The hex signature of a bundle checksum."""
    return key.sign(_DOMAIN + checksum.encode("ascii")).hex()


def verify_checksum(key: Ed25519PublicKey, header: dict, where: Path) -> None:
    """Raise :class:`BundleIntegrityError` unless ``header`` carries a signature by ``key``
    of its (already verified) checksum."""
    from cryptography.exceptions import InvalidSignature

    fix = "publish it again from a workspace that signs with the matching private key"
    signature, signer = header.get("signature"), header.get("signing_key")
    if signature is None:
        raise BundleIntegrityError(f"{where} is not signed, and this runtime only serves signed bundles; {fix}")
    expected = fingerprint(key)
    if not isinstance(signature, str) or not isinstance(signer, str):
        raise BundleIntegrityError(f"{where} has a damaged signature field; {fix}")
    if signer != expected:
        raise BundleIntegrityError(f"{where} is signed with key {signer}, not with the configured key {expected}; "
                                   f"{fix}")
    try:
        key.verify(bytes.fromhex(signature), _DOMAIN + header["checksum"].encode("ascii"))
    except (InvalidSignature, ValueError):
        raise BundleIntegrityError(f"{where} has a signature that does not verify with key {expected}: "
                                   f"it was not signed by that key's owner; {fix}") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no {what} at {path}; make a key pair with `rulelife bundle keygen --out DIR`") from None
    except OSError as exc:
        raise BundleError(f"cannot read the {what} {path}: {exc.strerror}") from None
