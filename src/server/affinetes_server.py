"""affinetes method server: exposes the functions of an environment's env.py over HTTP.

Standard library only (asyncio), Python >= 3.8, so it runs in any image, offline.
Wire-compatible with the Python affinetes server:

  GET  /health   -> 200 {"status": "ok"}
  GET  /methods  -> 200 {"methods": [{"name", "signature", "source", "endpoint"}]}
  POST /call     {"method", "args", "kwargs"} -> 200 {"status": "success", "result", "error": null}
  POST /<name>   {"args", "kwargs"} or a flat object taken as kwargs

Settings (environment variables):
  AFFINETES_ENV_PATH        path of env.py (default /app/env.py)
  AFFINETES_HOST            address to bind (default 0.0.0.0)
  AFFINETES_PORT            port (default 8000; 0 picks a free one)
  AFFINETES_MAX_BODY_BYTES  largest request body accepted (default 64 MiB)
  AFFINETES_MAX_WORKERS     threads for synchronous methods (default 256)
  AFFINETES_PORT_FILE       when set, the bound port is written there once listening
  AFFINETES_PARENT_PID      when set, the server exits soon after that process dies
  AFFINETES_ENV_TYPE        "http_based" serves env.py's own FastAPI `app` with uvicorn instead
"""

import asyncio
import base64
import concurrent.futures
import dataclasses
import importlib.util
import inspect
import json
import os
import signal
import sys
import threading
import time
import traceback

MAX_HEADER_BYTES = 64 * 1024
RESERVED_PATHS = ("/call", "/health", "/methods")
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    504: "Gateway Timeout",
}


class HttpError(Exception):
    """An error that maps to one HTTP response; `extra` adds structured fields."""

    def __init__(self, status, detail, close=False, **extra):
        Exception.__init__(self, detail)
        self.status = status
        self.detail = detail
        self.close = close
        self.extra = extra


# --------------------------------------------------------------------------- the environment


class Environment:
    """The user's env.py: its public functions and its lazily built Actor."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.module = self._load(self.path)
        self.actor_class = getattr(self.module, "Actor", None)
        if not inspect.isclass(self.actor_class):
            self.actor_class = None
        self.actor = None
        self._actor_lock = None

    @staticmethod
    def _load(path):
        env_dir = os.path.dirname(path)
        # env.py may import its sibling modules, as it would when run from its folder.
        if env_dir not in sys.path:
            sys.path.insert(0, env_dir)
        spec = importlib.util.spec_from_file_location("user_env", path)
        if spec is None or spec.loader is None:
            raise RuntimeError("cannot load environment module from %s" % path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["user_env"] = module
        spec.loader.exec_module(module)
        return module

    def _module_functions(self):
        """Public functions defined in env.py itself; imported ones are never exposed."""
        found = {}
        for name, obj in vars(self.module).items():
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if getattr(obj, "__module__", None) != self.module.__name__:
                continue
            found[name] = obj
        return found

    def _actor_method_names(self):
        if self.actor_class is None:
            return []
        names = []
        for name in dir(self.actor_class):
            if name.startswith("_"):
                continue
            if callable(getattr(self.actor_class, name, None)):
                names.append(name)
        return names

    def describe(self):
        methods = []
        for name in self._actor_method_names():
            methods.append(self._entry(name, self._actor_signature(name), "Actor"))
        actor_names = set(self._actor_method_names())
        for name, func in sorted(self._module_functions().items()):
            if name in actor_names:
                continue  # the Actor's method wins, as in dispatch
            methods.append(self._entry(name, _signature_text(func), "module"))
        return methods

    @staticmethod
    def _entry(name, signature, source):
        return {"name": name, "signature": signature, "source": source, "endpoint": "POST /" + name}

    def _actor_signature(self, name):
        raw = inspect.getattr_static(self.actor_class, name, None)
        attr = getattr(self.actor_class, name)
        try:
            sig = inspect.signature(attr)
        except (TypeError, ValueError):
            return "(...)"
        if inspect.isfunction(raw):  # a plain method: hide `self`
            params = list(sig.parameters.values())[1:]
            sig = sig.replace(parameters=params)
        return str(sig)

    def method_names(self):
        names = self._actor_method_names()
        return names + [n for n in sorted(self._module_functions()) if n not in names]

    async def resolve(self, name, executor):
        """The callable for `name`: an Actor method (built on first use) or a module function."""
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise self._not_found(name)
        if name in self._actor_method_names():
            actor = await self._get_actor(executor)
            return getattr(actor, name)
        func = self._module_functions().get(name)
        if func is None:
            raise self._not_found(name)
        return func

    def _not_found(self, name):
        return HttpError(404, "Method not found: %s" % (name,), methods=self.method_names())

    async def _get_actor(self, executor):
        # Lazy, so env vars given at start are visible; once, even with concurrent first calls.
        if self.actor is not None:
            return self.actor
        if self._actor_lock is None:
            self._actor_lock = asyncio.Lock()
        async with self._actor_lock:
            if self.actor is None:
                loop = asyncio.get_event_loop()
                try:
                    self.actor = await loop.run_in_executor(executor, self.actor_class)
                except Exception as exc:  # noqa: BLE001 - reported to the caller
                    tb = traceback.format_exc()
                    message = "Failed to initialize Actor: %s" % (exc,)
                    raise HttpError(
                        500,
                        "%s\n%s" % (message, tb),
                        error_type=type(exc).__name__,
                        message=message,
                        traceback=tb,
                    )
        return self.actor


def _signature_text(func):
    try:
        return str(inspect.signature(func))
    except (TypeError, ValueError):
        return "(...)"


# --------------------------------------------------------------------------- results


def to_jsonable(value):
    """Converts what json cannot encode: dataclasses, to_dict(), model_dump(), dict()."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    for attr in ("to_dict", "model_dump", "dict"):
        method = getattr(value, attr, None)
        if callable(method):
            return method()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def encode_json(payload):
    return json.dumps(payload, default=to_jsonable, allow_nan=False, ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------- calls


class Dispatcher:
    def __init__(self, env, max_workers):
        self.env = env
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="affinetes-call"
        )

    async def call(self, name, args, kwargs):
        if not isinstance(args, list):
            raise HttpError(400, "'args' must be a JSON array, got %s" % _json_type(args))
        if not isinstance(kwargs, dict):
            raise HttpError(400, "'kwargs' must be a JSON object, got %s" % _json_type(kwargs))
        func = await self.env.resolve(name, self.executor)
        self._check_arguments(name, func, args, kwargs)
        timeout = _timeout_seconds(kwargs)
        work = asyncio.ensure_future(self._run(func, args, kwargs))
        if timeout:
            # asyncio.wait never raises: a TimeoutError of the user's own stays in `work`.
            done, _ = await asyncio.wait({work}, timeout=timeout)
            if not done:
                work.cancel()
                message = "Method %s timed out after %gs (kwargs.timeout)" % (name, timeout)
                raise HttpError(504, message, error_type="TimeoutError", message=message)
        try:
            result = await work
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - whatever user code raises reaches the caller
            raise self._failure(name, exc)
        try:
            return encode_json({"status": "success", "result": result, "error": None})
        except Exception as exc:  # noqa: BLE001 - to_dict()/model_dump() of user objects may raise anything
            message = "Result of %s could not be encoded as JSON: %s" % (name, exc)
            raise HttpError(500, message, error_type=type(exc).__name__, message=message)

    async def _run(self, func, args, kwargs):
        if inspect.iscoroutinefunction(func):
            return await func(*args, **kwargs)
        loop = asyncio.get_event_loop()
        return await loop.run_in_executor(self.executor, lambda: func(*args, **kwargs))

    @staticmethod
    def _failure(name, exc):
        tb = user_traceback(exc)
        sys.stderr.write("affinetes: %s raised\n%s" % (name, tb))
        return HttpError(
            500,
            "%s\n%s" % (exc, tb),
            error_type=type(exc).__name__,
            message=str(exc),
            traceback=tb,
        )

    @staticmethod
    def _check_arguments(name, func, args, kwargs):
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            return  # builtins without a signature: let the call itself decide
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            message = "Invalid arguments for %s%s: %s" % (name, sig, exc)
            raise HttpError(400, message, error_type="TypeError", message=str(exc))


_MACHINERY = (os.path.abspath(__file__), os.path.dirname(asyncio.__file__), os.path.dirname(concurrent.futures.__file__))


def user_traceback(exc):
    """The traceback from the first frame of user code on: the server's own frames say nothing."""
    frames = traceback.extract_tb(exc.__traceback__)
    start = 0
    while start < len(frames) and os.path.abspath(frames[start].filename).startswith(_MACHINERY):
        start += 1
    kept = frames[start:] or frames
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(kept)
    return "".join(lines + traceback.format_exception_only(type(exc), exc))


def _timeout_seconds(kwargs):
    value = kwargs.get("timeout")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


def _json_type(value):
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


# --------------------------------------------------------------------------- HTTP


class Request:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    @property
    def keep_alive(self):
        return self.headers.get("connection", "").lower() != "close"


async def read_request(reader, max_body):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(400, "Incomplete request head", close=True)
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "Request head larger than %d bytes" % MAX_HEADER_BYTES, close=True)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise HttpError(400, "Malformed request line", close=True)
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "Malformed header line", close=True)
        headers[key.strip().lower()] = value.strip()
    body = await _read_body(reader, headers, max_body)
    path = parts[1].split("?", 1)[0]
    return Request(parts[0].upper(), path, headers, body)


async def _read_body(reader, headers, max_body):
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader, max_body)
    length_text = headers.get("content-length")
    if length_text is None:
        return b""
    try:
        length = int(length_text)
    except ValueError:
        raise HttpError(400, "Invalid Content-Length", close=True)
    if length < 0:
        raise HttpError(400, "Invalid Content-Length", close=True)
    if length > max_body:
        raise HttpError(413, "Request body of %d bytes exceeds the limit of %d bytes" % (length, max_body), close=True)
    return await reader.readexactly(length)


async def _read_chunked(reader, max_body):
    chunks = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "Invalid chunk size", close=True)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        total += size
        if total > max_body:
            raise HttpError(413, "Request body exceeds the limit of %d bytes" % max_body, close=True)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def render_response(status, body, keep_alive):
    head = (
        "HTTP/1.1 %d %s\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: %d\r\n"
        "Connection: %s\r\n\r\n" % (status, STATUS_TEXT.get(status, "Error"), len(body), "keep-alive" if keep_alive else "close")
    )
    return head.encode("latin-1") + body


def error_body(err):
    payload = {"detail": err.detail}
    payload.update(err.extra)
    return encode_json(payload)


class Server:
    def __init__(self, env, dispatcher, max_body):
        self.env = env
        self.dispatcher = dispatcher
        self.max_body = max_body

    async def handle_connection(self, reader, writer):
        try:
            while True:
                keep_alive = True
                try:
                    request = await read_request(reader, self.max_body)
                    if request is None:
                        break
                    keep_alive = request.keep_alive
                    status, body = 200, await self.route(request)
                except HttpError as err:
                    status, body = err.status, error_body(err)
                    keep_alive = keep_alive and not err.close
                except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    raise
                except Exception as exc:  # noqa: BLE001 - a bug must answer 500, never drop the connection
                    sys.stderr.write("affinetes: internal error\n%s" % traceback.format_exc())
                    status, body = 500, encode_json({"detail": "Internal server error: %s" % exc})
                writer.write(render_response(status, body, keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away; nothing to answer
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def route(self, request):
        path = request.path.rstrip("/") or "/"
        if path == "/health":
            _require(request, "GET", "HEAD")
            return encode_json({"status": "ok"})
        if path == "/methods":
            _require(request, "GET")
            return encode_json({"methods": self.env.describe()})
        if path == "/call":
            _require(request, "POST")
            payload = _parse_object(request.body)
            method = payload.get("method")
            if not isinstance(method, str) or not method:
                raise HttpError(400, "'method' must be a non-empty string")
            return await self.dispatcher.call(method, payload.get("args", []), payload.get("kwargs", {}))
        name = path[1:]
        if "/" in name or name == "":
            raise HttpError(404, "Not found: %s" % request.path)
        _require(request, "POST")
        args, kwargs = _split_direct_body(_parse_object(request.body, allow_empty=True))
        return await self.dispatcher.call(name, args, kwargs)


def _require(request, *methods):
    if request.method not in methods:
        raise HttpError(405, "Method %s not allowed on %s; use %s" % (request.method, request.path, " or ".join(methods)))


def _parse_object(body, allow_empty=False):
    if allow_empty and not body.strip():
        return {}
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(400, "Invalid JSON body: %s" % exc)
    if not isinstance(payload, dict):
        raise HttpError(400, "Request body must be a JSON object, got %s" % _json_type(payload))
    return payload


def _split_direct_body(payload):
    """`{"args": [...], "kwargs": {...}}` is structured; any other object is the kwargs."""
    if payload and set(payload) <= {"args", "kwargs"}:
        return payload.get("args", []), payload.get("kwargs", {})
    return [], payload


# --------------------------------------------------------------------------- main


def _int_setting(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        sys.stderr.write("affinetes: %s must be an integer, got %r\n" % (name, raw))
        sys.exit(2)


async def serve():
    env_path = os.environ.get("AFFINETES_ENV_PATH") or (sys.argv[1] if len(sys.argv) > 1 else "/app/env.py")
    host = os.environ.get("AFFINETES_HOST", "0.0.0.0")
    port = _int_setting("AFFINETES_PORT", 8000)
    max_body = _int_setting("AFFINETES_MAX_BODY_BYTES", 64 * 1024 * 1024)
    max_workers = _int_setting("AFFINETES_MAX_WORKERS", 256)

    env = Environment(env_path)
    server = Server(env, Dispatcher(env, max_workers), max_body)
    listener = await asyncio.start_server(server.handle_connection, host, port, limit=MAX_HEADER_BYTES)
    bound_port = listener.sockets[0].getsockname()[1]
    # The process runtime reads this line to learn the port when it asked for port 0.
    sys.stdout.write("affinetes: listening on %s:%d (env %s)\n" % (host, bound_port, env.path))
    sys.stdout.flush()
    _write_port_file(bound_port)
    _watch_parent()

    stop = asyncio.Event()
    loop = asyncio.get_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with listener:
        await stop.wait()
    server.dispatcher.executor.shutdown(wait=False)


def _write_port_file(port):
    path = os.environ.get("AFFINETES_PORT_FILE")
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(str(port))
    os.replace(tmp, path)  # atomic: a reader never sees a half-written port


def _watch_parent():
    """Exits when the client that started us dies, so a killed client leaves no server behind."""
    raw = os.environ.get("AFFINETES_PARENT_PID")
    if not raw:
        return
    parent = int(raw)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        sys.stderr.write("affinetes: parent process %d exited; stopping\n" % parent)
        sys.stderr.flush()
        os._exit(0)

    threading.Thread(target=watch, name="affinetes-parent-watch", daemon=True).start()


def serve_http_app():
    """Runs an HTTP-based environment's own `app` (the process runtime's counterpart of its CMD)."""
    import socket

    import uvicorn  # only HTTP-based environments need it, and they bring it

    env_path = os.environ.get("AFFINETES_ENV_PATH") or "/app/env.py"
    module = Environment._load(os.path.abspath(env_path))
    app = getattr(module, "app", None)
    if app is None:
        raise RuntimeError("%s defines no `app` for an HTTP-based environment" % env_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((os.environ.get("AFFINETES_HOST", "0.0.0.0"), _int_setting("AFFINETES_PORT", 8000)))
    sock.listen(1024)
    _write_port_file(sock.getsockname()[1])
    _watch_parent()
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def main():
    try:
        if os.environ.get("AFFINETES_ENV_TYPE") == "http_based":
            serve_http_app()
        else:
            asyncio.run(serve())
    except Exception:  # noqa: BLE001 - a failed import of env.py must be readable in the logs
        sys.stderr.write("affinetes: server failed to start\n%s" % traceback.format_exc())
        sys.stderr.flush()
        os._exit(1)
    # Threads still running user code must not keep a stopped server alive.
    os._exit(0)


if __name__ == "__main__":
    main()
