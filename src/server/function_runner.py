"""Runs one function of a file for the affinetes control plane (standard library only).

    python3 function_runner.py CALL_DIR FILE FUNCTION
    python3 -c "$(cat function_runner.py)" CALL_DIR FILE FUNCTION   (how the SDK runs it)

Reads CALL_DIR/args.json ({"args": [...], "kwargs": {...}}), calls FUNCTION of FILE
(awaiting it when it is a coroutine function), and writes CALL_DIR/result.json:
{"result": ...} or {"error": {"type", "message", "traceback"}} (then exits 1).
The function's own output goes to the container's log, as it is written.
"""

import asyncio
import dataclasses
import importlib.util
import inspect
import json
import os
import sys
import traceback


def _encode(value):
    """What json cannot encode: dataclasses, to_dict(), model_dump(), dict()."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    for attr in ("to_dict", "model_dump", "dict"):
        method = getattr(value, attr, None)
        if callable(method):
            return method()
    raise TypeError("result of type %s is not JSON serializable" % type(value).__name__)


def _write(call_dir, document):
    path = os.path.join(call_dir, "result.json")
    with open(path + ".tmp", "w") as out:
        json.dump(document, out, default=_encode)
    os.replace(path + ".tmp", path)  # the client never reads half a result


def main():
    call_dir, file, name = sys.argv[1:4]
    try:
        with open(os.path.join(call_dir, "args.json")) as f:
            payload = json.load(f)
        sys.path.insert(0, os.path.dirname(os.path.abspath(file)))  # sibling modules import
        spec = importlib.util.spec_from_file_location("__main_function__", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        function = getattr(module, name, None)
        if not callable(function):
            raise AttributeError("%s has no function %s" % (file, name))
        result = function(*payload.get("args", []), **payload.get("kwargs", {}))
        if inspect.isawaitable(result):
            result = asyncio.get_event_loop().run_until_complete(result)
        sys.stdout.flush()
        _write(call_dir, {"result": result})
    except BaseException as exc:  # noqa: BLE001 - whatever the function raised is reported
        sys.stdout.flush()
        traceback.print_exc()
        _write(
            call_dir,
            {"error": {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}},
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
