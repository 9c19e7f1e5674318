"""Rotation of the service user's refresh token, so that its consent never lapses.

A refresh token dies 90 days after it was issued (AADSTS700082); each redemption returns a new
one, valid 90 days. Rotating redeems the latest stored token and stores the new one as a new
version. It is safe by construction:

- the new version is written before anything forgets the old one, and old versions are never
  disabled (Entra ID does not revoke a refresh token when it issues the next): if the write fails
  the stored token still works, and nothing is lost;
- two rotations racing each redeem the same token and each write a version: both work, the later
  one is the latest;
- it is a no-op when the latest version is recent (``min_interval``), so a schedule that fires
  often, or twice, does not pile up versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ._errors import (
    ConfigurationError,
    ConsentExpiredError,
    ServiceUserMfaRequiredError,
    ServiceUserNotConfiguredError,
)
from ._refresh_token_store import (
    CONSENT_LIFETIME,
    ConsentRecord,
    ConsentState,
    RedeemedConsent,
    ServiceUserConsent,
    rotation_tags,
)

#: A version younger than this is not rotated again.
MIN_ROTATION_INTERVAL = timedelta(hours=12)


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did."""

    rotated: bool
    #: Why (for the log line): never a token.
    reason: str
    #: The latest version after the rotation.
    record: ConsentRecord | None = None


def rotate_refresh_token(
    consent: ServiceUserConsent,
    redeem: Callable[[str], RedeemedConsent],
    *,
    timeout: float,
    min_interval: timedelta = MIN_ROTATION_INTERVAL,
) -> RotationResult:
    """Redeem the latest stored refresh token and store the new one as a new version.

    Raises the package's errors: :class:`ConsentExpiredError` (and its MFA subclass) when the
    stored token no longer works, :class:`ConsentStoreError` when Key Vault fails,
    :class:`ConfigurationError` when the token is a plain setting, which cannot be written.
    """
    store = consent.store
    if store is None:
        raise ServiceUserNotConfiguredError("There is no service user whose consent to rotate.")
    if not store.writable:
        raise ConfigurationError(
            f"The service user's refresh token is {store.location}, which cannot be rotated: it "
            "dies 90 days after it was issued. Set KEY_VAULT_URL to keep it in Key Vault.",
            setting="KEY_VAULT_URL",
        )
    current = store.read(timeout=timeout)
    now = consent.wall_clock()
    created = current.record.created_on
    if created is not None and now - created < min_interval:
        return RotationResult(
            False,
            f"the latest version ({current.record.version}) was stored at "
            f"{created.isoformat(timespec='seconds')}, less than {min_interval} ago",
            current.record,
        )
    try:
        redeemed = redeem(current.token)
    except ServiceUserMfaRequiredError:
        consent.record_refusal(ConsentState.NO_MFA, current.record.version)
        raise
    except ConsentExpiredError:
        consent.record_refusal(ConsentState.EXPIRED, current.record.version)
        raise
    if not redeemed.mfa:
        consent.record_refusal(ConsentState.NO_MFA, current.record.version)
        redeemed.require_mfa()
    record = store.write(
        redeemed.refresh_token,
        expires_on=now + CONSENT_LIFETIME,
        tags=rotation_tags(current.record.tags, redeemed, now),
        timeout=timeout,
    )
    consent.forget()
    return RotationResult(
        True,
        f"version {record.version} replaces {current.record.version}",
        record,
    )


__all__ = ["MIN_ROTATION_INTERVAL", "RotationResult", "rotate_refresh_token"]
