"""Signed checkpoints: what the signature covers, and what checking one against a log finds."""


import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator import checkpoints as cps

H1, H2 = "a" * 64, "b" * 64
AT = "2026-11-26T20:00:00.000000Z"


@pytest.fixture
def signer():
    return cps.Signer(Ed25519PrivateKey.generate())


def test_a_checkpoint_signed_by_the_key_verifies(signer):
    checkpoint = signer.sign(7, H1, AT)
    assert set(checkpoint) == set(cps.FIELDS)
    assert checkpoint["key_id"] == cps.key_id(signer.public_key) and len(checkpoint["key_id"]) == 16
    assert cps.signature_problem(checkpoint, signer.public_key) is None


def test_the_signature_covers_a_versioned_canonical_string():
    assert cps.message(7, H1, AT) == f"commandpost-checkpoint-v1|7|{H1}|{AT}".encode()


@pytest.mark.parametrize("field, value", [("seq", 8), ("hash", H2), ("at", "2026-11-26T20:00:01.000000Z")])
def test_a_tampered_field_fails(signer, field, value):
    checkpoint = {**signer.sign(7, H1, AT), field: value}
    assert "signature is invalid" in cps.signature_problem(checkpoint, signer.public_key)


def test_another_key_fails(signer):
    other = cps.Signer(Ed25519PrivateKey.generate())
    checkpoint = signer.sign(7, H1, AT)
    assert "names key" in cps.signature_problem(checkpoint, other.public_key)
    forged = {**checkpoint, "key_id": other.key_id}  # claiming the other key does not help
    assert "signature is invalid" in cps.signature_problem(forged, other.public_key)


def test_a_signature_that_is_not_base64_is_named(signer):
    checkpoint = {**signer.sign(7, H1, AT), "signature": "not base64!"}
    assert "not base64" in cps.signature_problem(checkpoint, signer.public_key)


def test_the_public_key_round_trips_through_pem(signer):
    doc = cps.public_key_doc(signer.public_key)
    assert doc["alg"] == "Ed25519" and doc["pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert cps.key_id(cps.load_public_key(doc["pem"])) == doc["key_id"] == signer.key_id


@pytest.mark.parametrize("pem", ["", "hello", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_a_bad_public_key_is_a_plain_value_error(pem):
    with pytest.raises(ValueError, match="public key"):
        cps.load_public_key(pem)


def test_without_a_key_file_every_node_of_one_secret_signs_with_one_key():
    first = cps.resolve_key(None, "a-long-random-secret")
    assert cps.resolve_key(None, "a-long-random-secret").key_id == first.key_id  # another node, a restart
    assert cps.resolve_key(None, "another-deployment").key_id != first.key_id


def test_a_key_file_is_used_and_a_bad_one_refused_plainly(tmp_path):
    key = Ed25519PrivateKey.generate()
    (tmp_path / "k.pem").write_bytes(cps.private_pem(key))
    assert cps.resolve_key(tmp_path / "k.pem", "secret").key_id == cps.key_id(key.public_key())
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(ValueError, match="CP_CHECKPOINT_KEY_FILE .* is not an unencrypted PEM"):
        cps.resolve_key(tmp_path / "bad.pem", "secret")
    with pytest.raises(ValueError, match="cannot be read"):
        cps.resolve_key(tmp_path / "missing.pem", "secret")


def test_parse_takes_the_endpoint_answer_or_one_checkpoint(signer):
    checkpoint = signer.sign(3, H1, AT)
    answer = {"public_key": cps.public_key_doc(signer.public_key), "checkpoints": [checkpoint]}
    assert cps.parse(answer) == ([checkpoint], answer["public_key"]["pem"])
    assert cps.parse(checkpoint) == ([checkpoint], None)


@pytest.mark.parametrize("doc, message", [
    ([], "expected a JSON object"),
    ({"checkpoints": {}}, "must be a list"),
    ({"checkpoints": [1]}, "checkpoint 1 is not an object"),
    ({"seq": 1}, "lacks hash, at, key_id, signature"),
    ({"seq": -1, "hash": H1, "at": AT, "key_id": "k", "signature": "s"}, "seq must be a whole number"),
    ({"seq": True, "hash": H1, "at": AT, "key_id": "k", "signature": "s"}, "seq must be a whole number"),
    ({"seq": 1, "hash": 5, "at": AT, "key_id": "k", "signature": "s"}, "hash must be a string"),
    ({"public_key": "x", "checkpoints": []}, "'public_key' must be an object"),
])
def test_parse_names_what_is_malformed(doc, message):
    with pytest.raises(ValueError, match=message):
        cps.parse(doc)


def log_of(hashes: dict[int, str], broken: tuple[int, str] | None = None):
    head = max(hashes, default=0)
    return head, hashes.get, lambda seq: broken if broken and broken[0] <= seq else None


def test_check_passes_on_an_untouched_log(signer):
    found = [signer.sign(2, H1, AT), signer.sign(4, H2, AT)]
    outcome = cps.check(found, signer.public_key, *log_of({1: "c" * 64, 2: H1, 3: "d" * 64, 4: H2}))
    assert outcome.ok and outcome.held == 2


def test_check_names_the_checkpoint_that_does_not_hold_and_why(signer):
    found = [signer.sign(2, H1, AT), signer.sign(4, H2, AT)]
    truncated = cps.check(found, signer.public_key, *log_of({1: "c" * 64, 2: H1, 3: "d" * 64}))
    assert not truncated.ok and truncated.held == 1 and truncated.failed == found[1]
    assert "checkpoint 2 (seq 4)" in truncated.reason and "truncated" in truncated.reason
    rewritten = cps.check(found, signer.public_key, *log_of({1: "c" * 64, 2: "e" * 64, 3: "d" * 64, 4: H2}))
    assert "checkpoint 1 (seq 2)" in rewritten.reason and "rewritten" in rewritten.reason
    broken = cps.check(found, signer.public_key, *log_of({1: "c" * 64, 2: H1, 3: "d" * 64, 4: H2}, (3, "x")))
    assert "checkpoint 2 (seq 4)" in broken.reason and "broken at seq 3" in broken.reason
    forged = cps.check([{**found[0], "hash": "e" * 64}], signer.public_key, *log_of({2: "e" * 64}))
    assert "signature is invalid" in forged.reason
