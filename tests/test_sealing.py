"""The sealed successor of a rotation (kept for the grace window): only the presented token opens it."""

from __future__ import annotations

import base64
import os

import pytest

from proxy.token.sealing import LINEAGE_SECRET_BYTES, seal, unseal


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("size", [32, LINEAGE_SECRET_BYTES])
def test_the_token_a_successor_was_sealed_with_opens_it_and_another_does_not(size: int) -> None:
    """Both layouts (a version-1 secret of 32 bytes and today's) come back whole for the token they were
    sealed with; another token opens something else."""
    secret = _b64(os.urandom(size))
    sealed = seal(secret, "fam.presented")
    assert sealed != secret
    assert unseal(sealed, "fam.presented", "fam") == f"fam.{secret}"
    assert unseal(sealed, "fam.another", "fam") != f"fam.{secret}"


def test_a_sealed_value_longer_than_any_pad_is_refused() -> None:
    """A stored value longer than the 64-byte pad (a corrupted or foreign entry) raises rather than being
    opened with part of its bytes left unmasked."""
    with pytest.raises(ValueError, match="pad"):
        unseal(_b64(os.urandom(80)), "fam.presented", "fam")
