"""Signed checkpoints: the log's head hash signed with Ed25519, so that an outside body holding them can
later check that history up to each one was not rewritten or cut short, without seeing any incident data.

A checkpoint is ``{"seq", "hash", "at", "key_id", "signature"}``. The signature is Ed25519 over the
bytes of ``commandpost-checkpoint-v1|<seq>|<hash>|<at>`` (ASCII), base64 (standard alphabet, padded);
``key_id`` is the first 16 hex digits of the SHA-256 of the raw 32-byte public key.

Pure apart from the key file (``resolve_key``, like ``settings.resolve_secret``): checking a checkpoint
against a log takes the log's answers as functions, so this module never touches a database.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "commandpost-checkpoint-v1"
ALG = "Ed25519"
KEY_INFO = b"commandpost checkpoint signing key v1"
FIELDS = ("seq", "hash", "at", "key_id", "signature")
HASH = re.compile(r"^[0-9a-f]{64}$")
AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
MAX_SEQ = 2**63 - 1


def message(seq: int, hash: str, at: str) -> bytes:
    """The canonical bytes a checkpoint's signature covers."""
    return f"{VERSION}|{int(seq)}|{hash}|{at}".encode("ascii")


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def public_key_doc(public_key: Ed25519PublicKey) -> dict[str, str]:
    return {"key_id": key_id(public_key), "alg": ALG, "pem": public_pem(public_key)}


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """A PEM public key (SubjectPublicKeyInfo), or ValueError saying what is wrong with it."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("the public key is not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"the public key is not an {ALG} key")
    return key


def load_private_key(pem: bytes, where: str = "the checkpoint key") -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{where} is not an unencrypted PEM (PKCS8) private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{where} is not an {ALG} private key")
    return key


def private_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


@dataclass(frozen=True)
class Signer:
    """A node's signing key, and what it publishes of it."""
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, seq: int, hash: str, at: str) -> dict[str, Any]:
        signature = self.private_key.sign(message(seq, hash, at))
        return {"seq": int(seq), "hash": hash, "at": at, "key_id": self.key_id,
                "signature": base64.b64encode(signature).decode("ascii")}


def resolve_key(key_file: Path | None, secret: str) -> Signer:
    """The signing key: ``key_file`` (CP_CHECKPOINT_KEY_FILE, PEM PKCS8), else one derived from the token
    secret (HKDF-SHA256), so every node of a deployment signs with the same key and keeps it across
    restarts without a file to hand round. Whoever holds the secret can mint an administrator's token
    anyway; what a checkpoint proves to an outside body is that history it saw signed was not rewritten
    later, which a new signature cannot undo. A separate key file keeps the two apart."""
    if key_file is not None:
        try:
            pem = Path(key_file).read_bytes()
        except OSError as err:
            raise ValueError(f"CP_CHECKPOINT_KEY_FILE {str(key_file)!r} cannot be read: {err.strerror}") from None
        return Signer(load_private_key(pem, f"CP_CHECKPOINT_KEY_FILE {str(key_file)!r}"))
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO).derive(secret.encode())
    return Signer(Ed25519PrivateKey.from_private_bytes(seed))


# -- checking ---------------------------------------------------------------------------------------
def parse(doc: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The checkpoints of a saved ``GET /v1/checkpoints`` answer (or one checkpoint object) and the
    public key PEM it embeds, if any; ValueError saying what is malformed."""
    if isinstance(doc, dict) and "checkpoints" in doc:
        items, embedded = doc["checkpoints"], doc.get("public_key")
        if not isinstance(items, list):
            raise ValueError("'checkpoints' must be a list")
        pem = None
        if embedded is not None:
            if not isinstance(embedded, dict) or not isinstance(embedded.get("pem"), str):
                raise ValueError("'public_key' must be an object with a 'pem' string")
            pem = embedded["pem"]
    elif isinstance(doc, dict):
        items, pem = [doc], None
    else:
        raise ValueError("expected a JSON object: the answer of GET /v1/checkpoints, or one checkpoint")
    return [_checked_shape(item, n) for n, item in enumerate(items, 1)], pem


def _checked_shape(item: Any, n: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValueError(f"checkpoint {n} is not an object")
    missing = [name for name in FIELDS if name not in item]
    if missing:
        raise ValueError(f"checkpoint {n} lacks {', '.join(missing)}")
    seq = item["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"checkpoint {n}: seq must be a whole number from 0, got {seq!r}")
    for name in ("hash", "at", "key_id", "signature"):
        if not isinstance(item[name], str):
            raise ValueError(f"checkpoint {n}: {name} must be a string")
    return {name: item[name] for name in FIELDS}


def signature_problem(checkpoint: dict[str, Any], public_key: Ed25519PublicKey) -> str | None:
    """None if ``public_key`` signed exactly this checkpoint, else why not."""
    expected_id = key_id(public_key)
    if checkpoint["key_id"] != expected_id:
        return f"it names key {checkpoint['key_id']!r}, not the public key given ({expected_id})"
    if not HASH.match(checkpoint["hash"]) or not AT.match(checkpoint["at"]):
        return "its hash or time is malformed, so no signature can cover it"
    try:
        signature = base64.b64decode(checkpoint["signature"], validate=True)
    except (binascii.Error, ValueError):
        return "its signature is not base64"
    try:
        public_key.verify(signature, message(checkpoint["seq"], checkpoint["hash"], checkpoint["at"]))
    except InvalidSignature:
        return "its signature is invalid: the checkpoint was altered or signed with another key"
    return None


@dataclass(frozen=True)
class Outcome:
    ok: bool
    held: int
    failed: dict[str, Any] | None = None
    reason: str | None = None


def check(checkpoints: list[dict[str, Any]], public_key: Ed25519PublicKey, head_seq: int,
          hash_at: Callable[[int], str | None], chain_broken_at: Callable[[int], tuple[int, str] | None]) -> Outcome:
    """Every checkpoint against the log: signed by ``public_key``; the log reaches its seq (``head_seq``);
    the event at its seq has its hash (``hash_at``); and the chain up to it holds (``chain_broken_at(seq)``:
    None, or the first broken seq and why). The first that does not hold is named."""
    for n, cp in enumerate(checkpoints, 1):
        problem = signature_problem(cp, public_key)
        if problem is None and cp["seq"] > head_seq:
            problem = (f"the log ends at seq {head_seq}, before the checkpoint's seq {cp['seq']}: "
                       f"history was truncated")
        if problem is None and cp["seq"] > 0:
            found = hash_at(cp["seq"])
            if found is None:
                problem = f"the log has no event at seq {cp['seq']}: history was rewritten"
            elif found != cp["hash"]:
                problem = (f"the event at seq {cp['seq']} has hash {found[:12]}..., not the signed "
                           f"{cp['hash'][:12]}...: history was rewritten")
        if problem is None:
            broken = chain_broken_at(cp["seq"])
            if broken is not None:
                problem = f"the chain up to it is broken at seq {broken[0]}: {broken[1]}"
        if problem is not None:
            return Outcome(False, n - 1, cp, f"checkpoint {n} (seq {cp['seq']}) does not hold: {problem}")
    return Outcome(True, len(checkpoints))
