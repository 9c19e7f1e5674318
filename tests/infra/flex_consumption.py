"""What Flex Consumption rejects or ignores, beyond what Azure's resource type definitions say.

The published definitions (bicep-types-az) describe `Microsoft.Web/sites` for every hosting plan,
so a Flex Consumption site passes a type check with properties and app settings the platform then
refuses at deployment time or silently ignores. These are the platform's own rules, each with the
page (or the error) it comes from; tests/infra/check_templates.py applies them to every site that
runs on a Flex Consumption plan.
"""

from __future__ import annotations

from typing import NamedTuple

#: The Functions app settings reference, section "Flex Consumption plan deprecations".
DEPRECATIONS = (
    "learn.microsoft.com/azure/azure-functions/functions-app-settings"
    "#flex-consumption-plan-deprecations"
)
#: What Azure Resource Manager answers when a Flex Consumption site sets ftpsState.
FTPS_STATE_ERROR = (
    'ARM deployment error "The following site configuration property (Site.SiteConfig.FtpsState) '
    'for Flex Consumption sites is invalid. Please remove or rename it before retrying."'
)


class Rule(NamedTuple):
    """Why a setting or property is wrong on Flex Consumption, and where that is written."""

    reason: str
    source: str


#: Site (`properties.*`) and site-config (`properties.siteConfig.*`) properties, by lower-cased
#: name: the deprecation table names some at one level and Azure accepts several at both.
SITE_PROPERTIES: dict[str, Rule] = {
    "ftpsstate": Rule(
        "rejected at deployment: Flex Consumption has no FTP(S); turn basic publishing "
        "credentials off with basicPublishingCredentialsPolicies instead",
        f"{FTPS_STATE_ERROR}; {DEPRECATIONS}",
    ),
    "alwayson": Rule("not valid on Flex Consumption", DEPRECATIONS),
    "containersize": Rule(
        "renamed: functionAppConfig.scaleAndConcurrency.instanceMemoryMB", DEPRECATIONS
    ),
    "functionappscalelimit": Rule(
        "renamed: functionAppConfig.scaleAndConcurrency.maximumInstanceCount", DEPRECATIONS
    ),
    "prewarmedinstancecount": Rule(
        "renamed: functionAppConfig.scaleAndConcurrency.alwaysReady", DEPRECATIONS
    ),
    "isxenon": Rule("not valid on Flex Consumption", DEPRECATIONS),
    "javaversion": Rule("replaced by functionAppConfig.runtime.version", DEPRECATIONS),
    "linuxfxversion": Rule("replaced by functionAppConfig.runtime", DEPRECATIONS),
    "netframeworkversion": Rule("replaced by functionAppConfig.runtime.version", DEPRECATIONS),
    "powershellversion": Rule("replaced by functionAppConfig.runtime.version", DEPRECATIONS),
    "use32bitworkerprocess": Rule("32-bit workers are not supported", DEPRECATIONS),
    "vnetbackuprestoreenabled": Rule("not used for networking on Flex Consumption", DEPRECATIONS),
    "vnetcontentshareenabled": Rule("not used for networking on Flex Consumption", DEPRECATIONS),
    "vnetimagepullenabled": Rule("not used for networking on Flex Consumption", DEPRECATIONS),
    "vnetrouteallenabled": Rule(
        "not used for networking on Flex Consumption (all outbound traffic already goes "
        "through the integrated subnet)",
        DEPRECATIONS,
    ),
    "windowsfxversion": Rule("not valid on Flex Consumption (Linux only)", DEPRECATIONS),
}

#: App settings, by upper-cased name.
APP_SETTINGS: dict[str, Rule] = {
    "ENABLE_ORYX_BUILD": Rule("replaced by remote build", DEPRECATIONS),
    "FUNCTIONS_EXTENSION_VERSION": Rule("set by the platform", DEPRECATIONS),
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": Rule(
        "replaced by functionAppConfig.scaleAndConcurrency.triggers.http.perInstanceConcurrency",
        DEPRECATIONS,
    ),
    "FUNCTIONS_WORKER_PROCESS_COUNT": Rule("not valid on Flex Consumption", DEPRECATIONS),
    "FUNCTIONS_WORKER_RUNTIME": Rule("replaced by functionAppConfig.runtime.name", DEPRECATIONS),
    "FUNCTIONS_WORKER_RUNTIME_VERSION": Rule(
        "replaced by functionAppConfig.runtime.version", DEPRECATIONS
    ),
    "FUNCTIONS_WORKER_SHARED_MEMORY_DATA_TRANSFER_ENABLED": Rule(
        "not valid on Flex Consumption", DEPRECATIONS
    ),
    "SCM_DO_BUILD_DURING_DEPLOYMENT": Rule("replaced by remote build", DEPRECATIONS),
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": Rule(
        "replaced by functionAppConfig.deployment", DEPRECATIONS
    ),
    "WEBSITE_CONTENTOVERVNET": Rule("not used for networking on Flex Consumption", DEPRECATIONS),
    "WEBSITE_CONTENTSHARE": Rule("replaced by functionAppConfig.deployment", DEPRECATIONS),
    "WEBSITE_DNS_SERVER": Rule("DNS comes from the integrated virtual network", DEPRECATIONS),
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": Rule(
        "replaced by functionAppConfig.scaleAndConcurrency.maximumInstanceCount", DEPRECATIONS
    ),
    "WEBSITE_NODE_DEFAULT_VERSION": Rule(
        "replaced by functionAppConfig.runtime.version", DEPRECATIONS
    ),
    "WEBSITE_RUN_FROM_PACKAGE": Rule(
        "not used: Flex Consumption runs the package in functionAppConfig.deployment", DEPRECATIONS
    ),
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": Rule(
        "there is no content share on Flex Consumption", DEPRECATIONS
    ),
    "WEBSITE_VNET_ROUTE_ALL": Rule("not used for networking on Flex Consumption", DEPRECATIONS),
}
