"""The HTTP front door of the Partner Center gateway (Azure Functions specific code)."""
