"""A client for the Microsoft Partner Center REST API with App+User tokens.

It knows nothing of Azure Functions: it could be published on its own.
"""

from ._client import MAX_CACHED_LINKS, PartnerCenterClient
from ._config import (
    CREDENTIAL_SETTINGS,
    SETTING_NAMES,
    SETTINGS,
    CredentialKind,
    Settings,
    SettingSpec,
)
from ._errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    CallerTokenRejectedError,
    ConfigurationError,
    ConsentExpiredError,
    ConsentRequiredError,
    InvalidArgumentError,
    InvalidClientCredentialError,
    MfaRequiredError,
    NotFoundError,
    PartnerCenterError,
    PermissionDeniedError,
    ServiceUserMfaRequiredError,
    ServiceUserNotConfiguredError,
    ThrottledError,
    UnauthorizedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ._ids import is_guid
from ._models import (
    Agreement,
    AgreementCollection,
    AgreementType,
    PrimaryContact,
    RelationshipRequest,
)
from ._tokens import (
    SERVICE_USER,
    OnBehalfOf,
    Principal,
    ServiceUser,
    TokenCache,
    TokenProvider,
)
from ._tracing import CallTracer, UpstreamCall, set_call_tracer, traced_call
from ._transport import build_session

__all__ = [
    "CREDENTIAL_SETTINGS",
    "MAX_CACHED_LINKS",
    "SERVICE_USER",
    "SETTINGS",
    "SETTING_NAMES",
    "Agreement",
    "AgreementCollection",
    "AgreementType",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BadResponseError",
    "CallTracer",
    "CallerTokenRejectedError",
    "ConfigurationError",
    "ConsentExpiredError",
    "ConsentRequiredError",
    "CredentialKind",
    "InvalidArgumentError",
    "InvalidClientCredentialError",
    "MfaRequiredError",
    "NotFoundError",
    "OnBehalfOf",
    "PartnerCenterClient",
    "PartnerCenterError",
    "PermissionDeniedError",
    "PrimaryContact",
    "Principal",
    "RelationshipRequest",
    "ServiceUser",
    "ServiceUserMfaRequiredError",
    "ServiceUserNotConfiguredError",
    "SettingSpec",
    "Settings",
    "ThrottledError",
    "TokenCache",
    "TokenProvider",
    "UnauthorizedError",
    "UpstreamCall",
    "UpstreamError",
    "UpstreamTimeoutError",
    "build_session",
    "is_guid",
    "set_call_tracer",
    "traced_call",
]
