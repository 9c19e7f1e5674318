"""The Azure Functions app: created here, its functions registered one blueprint per resource."""

import azure.functions as func

from gateway.startup import uncollected_imports

with uncollected_imports():
    from gateway.functions import BLUEPRINTS
    from gateway.logs import configure_logging

configure_logging()

# Callers are authenticated in code (Entra ID bearer tokens), not with function keys.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
