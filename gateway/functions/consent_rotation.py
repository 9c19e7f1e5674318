"""RotateServiceUserConsent: renew the service user's refresh token on a schedule.

A refresh token dies 90 days after it was issued; each redemption gives a new one. This timer
function (schedule: the ``CONSENT_ROTATION_SCHEDULE`` app setting, daily by default) stores the
new one in Key Vault, so the consent never lapses. Failures are logged as warnings that name the
fix; nothing is lost when it fails (the stored token is only ever replaced by a newer version).
"""

from __future__ import annotations

import logging

import azure.functions as func

from partnercenter import (
    ConfigurationError,
    ConsentExpiredError,
    PartnerCenterError,
    ServiceUserNotConfiguredError,
)

from ..runtime import get_runtime

bp = func.Blueprint()
logger = logging.getLogger("gateway.consent")

FUNCTION_NAME = "RotateServiceUserConsent"
#: The fix for a consent that cannot be renewed automatically.
CONSENT_FIX = (
    "If it keeps failing, consent again for the service user, signing in with multi-factor "
    "authentication: make consent (python -m gateway.consent)."
)


@bp.function_name(FUNCTION_NAME)
@bp.timer_trigger(
    arg_name="timer", schedule="%CONSENT_ROTATION_SCHEDULE%", run_on_startup=False, use_monitor=True
)
def rotate_service_user_consent(timer: func.TimerRequest) -> None:
    """Redeem the stored refresh token and store the new one as a new Key Vault version."""
    if timer.past_due:
        logger.info("%s is running late (past due)", FUNCTION_NAME)
    try:
        client = get_runtime().client
        result = client.rotate_service_user_consent()
    except ServiceUserNotConfiguredError as err:
        logger.warning("%s: no consent to rotate: %s %s", FUNCTION_NAME, err, err.remedy or "")
        return
    except ConsentExpiredError as err:
        # Expired, revoked, or without MFA: only a new consent helps.
        logger.warning(
            "%s failed: the service user's refresh token no longer works (%s). %s",
            FUNCTION_NAME,
            err,
            CONSENT_FIX,
        )
        return
    except ConfigurationError as err:
        logger.warning("%s cannot rotate: %s", FUNCTION_NAME, err)
        return
    except PartnerCenterError as err:
        logger.warning(
            "%s failed: %s Nothing was lost: the stored refresh token still works until it "
            "expires, and the next run retries. %s",
            FUNCTION_NAME,
            err,
            CONSENT_FIX,
        )
        return
    if result.rotated:
        expires = result.record.expires_on if result.record else None
        logger.info(
            "%s stored a new refresh token: %s; expires %s",
            FUNCTION_NAME,
            result.reason,
            expires.isoformat(timespec="seconds") if expires else "unknown",
        )
    else:
        logger.info("%s had nothing to do: %s", FUNCTION_NAME, result.reason)
