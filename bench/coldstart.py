"""``python -m bench.coldstart SPEC``: one cold start the way Azure starts the app, in this process.

The Python worker imports ``function_app``, indexes it (``app.get_functions()``, once) and hands
the first request to the function. This does the same in a fresh interpreter, against the
simulator named by the environment (already warm: it has served the benchmark), and times:

- ``worker_preload_ms``: ``import azure.functions`` and the standard-library modules the worker
  has loaded (:data:`WORKER_STDLIB_MODULES`) before it loads the app;
- ``import_ms``: ``import function_app`` (every socket connect and name lookup meanwhile recorded:
  there must be none);
- ``index_ms``: the worker's indexing;
- ``first_answer_ms``: from the start of the import to the first authenticated answer (the
  agreements of a customer for a user: token validation, on-behalf-of exchange, Partner Center);
- ``warm_answer_ms``: then the same for another user: one token exchange and one Partner Center
  call in a warm process, the baseline the first answer is held to.

Only the standard library is imported before the timed import. SPEC is a JSON object with the
two users' tokens, the customer id and, optionally, ``profile``: a path where pyinstrument writes
the profile of the whole cold start. The last line printed is the result as JSON.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

_network_calls: list[str] = []
#: Where a process connects or looks a name up.
_NETWORK = (
    (socket.socket, "connect"),
    (socket.socket, "connect_ex"),
    (socket, "create_connection"),
    (socket, "getaddrinfo"),
)


def _spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def record(*args: Any, **kwargs: Any) -> Any:
        _network_calls.append(name)
        return real(*args, **kwargs)

    return record


def _watch_network() -> Callable[[], None]:
    """Record every connect and name lookup until the returned function is called."""
    originals = [(owner, name, getattr(owner, name)) for owner, name in _NETWORK]
    for owner, name, real in originals:
        setattr(owner, name, _spy(f"socket.{name}", real))

    def restore() -> None:
        for owner, name, real in originals:
            setattr(owner, name, real)

    return restore


#: The standard-library modules the Python worker has loaded, besides ``azure.functions`` and
#: what it imports, when it imports the app: azure-functions-python-worker 4.34.0 (its tag's
#: sources, protos generated as its tests/test_setup.py does, with grpcio 1.59.3, protobuf 4.25.3,
#: python-dateutil 2.9.0 and azurefunctions-extensions-base 1.2.0), run through main.main()'s
#: start-up, a Dispatcher, and the worker init request's steps up to loader.install(), without
#: telemetry (PYTHON_ENABLE_OPENTELEMETRY unset); ``sys.modules`` then, less what
#: ``import azure.functions`` loads, less grpc, protobuf, dateutil and the worker's own modules,
#: which the app does not use. Of these the app's import uses decimal, numbers, pathlib,
#: platform, queue, uuid and concurrent.futures.thread.
WORKER_STDLIB_MODULES = (
    "argparse",
    "concurrent.futures.thread",
    "ctypes",
    "decimal",
    "encodings.raw_unicode_escape",
    "encodings.unicode_escape",
    "gettext",
    "logging.handlers",
    "mmap",
    "ntpath",
    "numbers",
    "pathlib",
    "pickle",
    "platform",
    "queue",
    "uuid",
)


def cold_start(spec: dict[str, Any]) -> dict[str, Any]:
    """Import, index, first answer, warm answer; milliseconds."""
    # The worker imports azure.functions itself before it loads the app: its init request loads
    # the binding registry (azure-functions-python-worker 4.34, dispatcher.py lines 394-399 and
    # bindings/meta.py lines 55-68), and its own start has loaded WORKER_STDLIB_MODULES. Timed
    # apart: it is the worker's start, not the app's import.
    preload_started = time.perf_counter()
    import azure.functions as func  # noqa: PLC0415

    for name in WORKER_STDLIB_MODULES:
        importlib.import_module(name)

    restore = _watch_network()
    cpu_started = time.process_time()
    started = time.perf_counter()
    import function_app  # noqa: PLC0415 - the import is what is measured

    imported = time.perf_counter()
    cpu_imported = time.process_time()
    restore()
    functions = function_app.app.get_functions()  # what worker indexing calls, once
    indexed = time.perf_counter()

    handler = next(
        f.get_user_function()
        for f in functions
        if f.get_function_name() == "ListCustomerAgreements"
    )

    def answer(token: str) -> int:
        # As the worker builds it from the host's message: lower-cased header names.
        request = func.HttpRequest(
            "GET",
            f"http://localhost/api/customers/{spec['customer']}/agreements",
            headers={"authorization": f"Bearer {token}", "x-correlation-id": str(uuid.uuid4())},
            params={},
            route_params={"customerId": spec["customer"]},
            body=b"",
        )
        status: int = handler(request).status_code
        return status

    first_status = answer(spec["tokens"][0])
    first = time.perf_counter()
    warm_status = answer(spec["tokens"][1])
    warm = time.perf_counter()
    return {
        "worker_preload_ms": (started - preload_started) * 1000,
        "import_ms": (imported - started) * 1000,
        # CPU time: steadier than wall time on a shared machine.
        "import_cpu_ms": (cpu_imported - cpu_started) * 1000,
        "index_ms": (indexed - imported) * 1000,
        "first_answer_ms": (first - started) * 1000,
        "warm_answer_ms": (warm - first) * 1000,
        "statuses": [first_status, warm_status],
        "functions": len(functions),
        "app_file": function_app.__file__,
        "network_calls": _network_calls,
    }


def main(argv: list[str]) -> int:
    """Run one cold start and print its figures as the last line."""
    spec: dict[str, Any] = json.loads(argv[0])
    if spec.get("profile"):
        from pyinstrument import Profiler  # noqa: PLC0415 - only a profiled run needs it

        profiler = Profiler(interval=0.0005)
        profiler.start()
        result = cold_start(spec)
        profiler.stop()
        with open(spec["profile"], "w", encoding="utf-8") as out:
            out.write(profiler.output_text(unicode=True, show_all=False))
    else:
        result = cold_start(spec)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
