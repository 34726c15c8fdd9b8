"""affinetes method server: exposes the functions of an environment's env.py over HTTP.

Standard library only (asyncio), Python >= 3.8, so it runs in any image, offline.
Wire-compatible with the Python affinetes server:

  GET  /health   -> 200 {"status": "ok"}
  GET  /methods  -> 200 {"methods": [{"name", "signature", "source", "endpoint"}]}
  POST /call     {"method", "args", "kwargs"} -> 200 {"status": "success", "result", "error": null}
  POST /<name>   {"args", "kwargs"} or a flat object taken as kwargs

Who may call: when AFFINETES_AUTH_TOKEN is set (the affinetes SDK sets a random one per
instance and sends it on every call), every request but `GET /health` must carry
`Authorization: Bearer <token>`, or it is answered 401 {"detail": ...} and its connection
closed before its body is read. `/health` stays open because it tells nothing but "up"
(what a TCP connect tells anyway) and because probes of any client must keep working.
Without a token the server answers anyone, as the Python affinetes server does, so images
and clients of either side keep working with the other. The variable is removed from the
environment before env.py is loaded, so the environment's code and the processes it
starts do not inherit it.

Where it listens: AFFINETES_HOST, default 0.0.0.0, because in a container the client
reaches the server through the container's bridge address (or a port the engine publishes
on 127.0.0.1, or an SSH tunnel to the bridge address): a server bound to 127.0.0.1 inside
the container would be unreachable. Other containers on that bridge can reach the port;
the token is what keeps them out. The process runtime, where the client is on the same
machine, binds 127.0.0.1.

Slow and many clients: a request head must arrive within AFFINETES_HEAD_TIMEOUT_SECONDS of
its first byte (a new connection's first head within that time of the connection); a body
(and a response) within the head timeout plus its size at AFFINETES_MIN_BYTES_PER_SECOND;
a kept-alive connection idle for AFFINETES_IDLE_TIMEOUT_SECONDS is closed. A client caught
mid-request is answered 408 and closed. At most AFFINETES_MAX_CONNECTIONS connections are
open: past it, the oldest connection that has not proven the token (has not completed a
request, without a token) is closed to make room, and when every connection has, the new
one is answered 503 and closed. So a flood of half-sent requests neither starves the
owner's calls nor `/health`.

Settings (environment variables):
  AFFINETES_ENV_PATH              path of env.py (default /app/env.py)
  AFFINETES_HOST                  address to bind (default 0.0.0.0, see above)
  AFFINETES_PORT                  port (default 8000; 0 picks a free one)
  AFFINETES_AUTH_TOKEN            the bearer token every call must carry (default: none)
  AFFINETES_MAX_BODY_BYTES        largest request body accepted (default 64 MiB; larger: 413)
  AFFINETES_MAX_CONNECTIONS       open connections at most (default 256)
  AFFINETES_HEAD_TIMEOUT_SECONDS  time to send a request head (default 10)
  AFFINETES_IDLE_TIMEOUT_SECONDS  time a kept-alive connection may wait for its next request (default 60)
  AFFINETES_MIN_BYTES_PER_SECOND  slowest rate a body or response may move at (default 65536)
  AFFINETES_MAX_WORKERS           threads for synchronous methods (default 256)
  AFFINETES_PORT_FILE             when set, the bound port is written there once listening
  AFFINETES_PARENT_PID            when set, the server exits soon after that process dies
  AFFINETES_ENV_TYPE              "http_based" serves env.py's own FastAPI `app` with uvicorn instead
                                  (that app is not guarded by the token: it may check
                                  AFFINETES_AUTH_TOKEN itself, which it inherits)

Bad input (malformed heads, framing, JSON, argument types) is answered 400, 404, 405,
408, 411, 413 or 431 with {"detail": ...}; 500 means the method itself raised.
"""

import asyncio
import base64
import concurrent.futures
import dataclasses
import hmac
import importlib.util
import inspect
import json
import os
import re
import signal
import sys
import threading
import time
import traceback

MAX_HEADER_BYTES = 64 * 1024
RESERVED_PATHS = ("/call", "/health", "/methods")
AUTH_TOKEN_VARIABLE = "AFFINETES_AUTH_TOKEN"
# A week: longer than any call an evaluation makes, short enough for every timer.
MAX_CALL_TIMEOUT_SECONDS = 7 * 24 * 3600
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
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
    """`kwargs.timeout`, when a number, also bounds the call here: a positive number of seconds, at most a week."""
    value = kwargs.get("timeout")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # not a number: the method's own parameter, passed on untouched
    if not 0 < value <= MAX_CALL_TIMEOUT_SECONDS:
        raise HttpError(
            400,
            "'kwargs.timeout' must be a positive number of seconds, at most %d; got %s"
            % (MAX_CALL_TIMEOUT_SECONDS, repr(value)[:40]),
        )
    return float(value)


def _json_type(value):
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


# --------------------------------------------------------------------------- HTTP

# An HTTP token (a method or a header name), RFC 9110 section 5.6.2.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_TOKEN_CHARS = re.compile("^%s$" % _TOKEN)
# The whole head in one match (the hot path); what fails it is diagnosed by _head_error.
_HEAD = re.compile(
    r"(%s) ([^\x00-\x20\x7f]+) (HTTP/1\.[01])\r\n((?:%s:[^\r\n\x00]*\r\n)*)\r\n" % (_TOKEN, _TOKEN)
)
_DIGITS = re.compile(r"^[0-9]{1,18}$")
_HEX = re.compile(r"^[0-9A-Fa-f]{1,15}$")
_FRAMING_HEADERS = ("content-length", "transfer-encoding")
# How long, and how much, an error answer waits for the client's unread input before closing.
LINGER_SECONDS = 1.0
LINGER_MAX_BYTES = 1024 * 1024


class Request:
    def __init__(self, method, path, version, headers):
        self.method = method
        self.path = path
        self.headers = headers
        connection = headers.get("connection", "").lower()
        # HTTP/1.0 closes unless asked to keep the connection; HTTP/1.1 keeps it unless asked to close.
        self.keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
        self.body = b""


def parse_head(head):
    """The request line and headers; anything malformed is a 400 (the connection then closes)."""
    text = head.decode("latin-1")
    if _HEAD.fullmatch(text) is None:
        raise _head_error(text)
    lines = text.split("\r\n")
    method, target, version = lines[0].split(" ")
    if not target.startswith("/"):
        raise HttpError(400, "The request target must be a path", close=True)
    headers = {}
    for line in lines[1:-2]:  # the head ends with an empty line
        key, _, value = line.partition(":")
        key = key.lower()
        value = value.strip(" \t")
        if key in _FRAMING_HEADERS and key in headers and headers[key] != value:
            # two framings of one body: a proxy and this server could read different requests
            raise HttpError(400, "Conflicting %s headers" % key, close=True)
        headers[key] = value
    if "content-length" in headers and "transfer-encoding" in headers:
        raise HttpError(400, "Both Content-Length and Transfer-Encoding given", close=True)
    return Request(method.upper(), target.split("?", 1)[0], version, headers)


def _head_error(text):
    """Why a head is malformed, in words."""
    if "\0" in text:
        return HttpError(400, "NUL byte in the request head", close=True)
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) == 3 and _TOKEN_CHARS.match(parts[0]) and parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        return HttpError(400, "Unsupported HTTP version: %s" % parts[2][:20], close=True)
    if not _HEAD.match(lines[0] + "\r\n\r\n"):
        return HttpError(400, "Malformed request line", close=True)
    return HttpError(400, "Malformed header line", close=True)


def body_length(headers, max_body):
    """The declared body length, or None for a chunked body; checked against the limit before reading."""
    encoding = headers.get("transfer-encoding")
    if encoding is not None:
        if encoding.lower() != "chunked":
            raise HttpError(400, "Unsupported Transfer-Encoding: %s" % encoding[:40], close=True)
        return None
    text = headers.get("content-length")
    if text is None:
        return 0
    if not _DIGITS.match(text):
        raise HttpError(400, "Invalid Content-Length", close=True)
    length = int(text)
    if length > max_body:
        raise HttpError(413, "Request body of %d bytes exceeds the limit of %d bytes" % (length, max_body), close=True)
    return length


async def read_chunked(reader, max_body, conn, limits):
    chunks = []
    total = 0
    while True:
        try:
            size_line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError(400, "Invalid chunk size line", close=True)
        size_text = size_line[:-2].split(b";", 1)[0].strip().decode("latin-1")
        if not _HEX.match(size_text):
            raise HttpError(400, "Invalid chunk size", close=True)
        size = int(size_text, 16)
        if size == 0:
            await _skip_trailers(reader)
            return b"".join(chunks)
        total += size
        if total > max_body:
            raise HttpError(413, "Request body exceeds the limit of %d bytes" % max_body, close=True)
        conn.extend(size / limits.min_rate)  # a slow sender earns time only by sending
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise HttpError(400, "Chunk data not followed by CRLF", close=True)


async def _skip_trailers(reader):
    length = 0
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError(431, "Trailers larger than %d bytes" % MAX_HEADER_BYTES, close=True)
        if line == b"\r\n":
            return
        length += len(line)
        if length > MAX_HEADER_BYTES:
            raise HttpError(431, "Trailers larger than %d bytes" % MAX_HEADER_BYTES, close=True)


def render_response(status, body, keep_alive, extra_headers="", head_only=False):
    head = (
        "HTTP/1.1 %d %s\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: %d\r\n"
        "%s"
        "Connection: %s\r\n\r\n"
        % (
            status,
            STATUS_TEXT.get(status, "Error"),
            len(body),
            extra_headers,
            "keep-alive" if keep_alive else "close",
        )
    )
    return head.encode("latin-1") + (b"" if head_only else body)


def error_body(err):
    payload = {"detail": err.detail}
    payload.update(err.extra)
    return encode_json(payload)


class Limits:
    """How long and how much a client may take; see the module docstring for the settings."""

    def __init__(self):
        self.max_body = _int_setting("AFFINETES_MAX_BODY_BYTES", 64 * 1024 * 1024, minimum=0)
        self.max_connections = _int_setting("AFFINETES_MAX_CONNECTIONS", 256, minimum=1)
        self.head_timeout = _seconds_setting("AFFINETES_HEAD_TIMEOUT_SECONDS", 10.0)
        self.idle_timeout = _seconds_setting("AFFINETES_IDLE_TIMEOUT_SECONDS", 60.0)
        self.min_rate = _int_setting("AFFINETES_MIN_BYTES_PER_SECOND", 64 * 1024, minimum=1)

    def transfer_time(self, size):
        """Time allowed to send or receive `size` bytes: the head timeout plus the size at the minimum rate."""
        return self.head_timeout + size / self.min_rate

    @property
    def sweep_interval(self):
        # Deadlines are checked by one sweep, not a timer per read: the hot path only stores a number.
        return max(0.02, min(1.0, self.head_timeout / 10, self.idle_timeout / 10))


# What a connection is doing, for its deadline and for choosing whom to drop at the cap.
IDLE, HEAD, BODY, BUSY, WRITE = "idle", "head", "body", "busy", "write"


class Connection:
    """One client connection: its phase, the deadline of that phase, and whether it proved the token."""

    __slots__ = ("transport", "loop", "phase", "deadline", "trusted", "closed")

    def __init__(self, transport, loop):
        self.transport = transport
        self.loop = loop
        self.phase = IDLE
        self.deadline = None
        self.trusted = False
        self.closed = False

    def expect(self, phase, seconds):
        """Enters `phase`, which must end within `seconds` (None: no bound, e.g. while a method runs)."""
        self.phase = phase
        self.deadline = None if seconds is None else self.loop.time() + seconds

    def extend(self, seconds):
        if self.deadline is not None:
            self.deadline += seconds

    def drop(self, status=None, detail=None):
        """Closes at once; a client caught mid-request first gets `status` (408 after a read timeout)."""
        if self.closed:
            return
        self.closed = True
        if status is not None:
            try:
                self.transport.write(render_response(status, encode_json({"detail": detail}), False))
            except Exception:  # noqa: BLE001 - the peer may be gone already
                pass
        self.transport.abort()


class Server:
    """HTTP/1.1 over asyncio streams: the token check, the connection cap and deadlines, and the routes."""

    def __init__(self, env, dispatcher, limits, token):
        self.env = env
        self.dispatcher = dispatcher
        self.limits = limits
        self.token = token.encode("utf-8") if token else None
        # Insertion-ordered: the oldest connection first, which is the first dropped at the cap.
        self.connections = {}

    async def handle_connection(self, reader, writer):
        conn = self._admit(writer)
        if conn is None:
            return
        limits = self.limits
        # A new connection must send its first request head within the head timeout; a kept-alive
        # one may wait for its next request for the idle timeout.
        conn.expect(IDLE, limits.head_timeout)
        try:
            while not conn.closed:
                try:
                    first = await reader.readexactly(1)
                except asyncio.IncompleteReadError:
                    break  # closed between requests: nothing to answer
                conn.expect(HEAD, limits.head_timeout)
                request = None
                try:
                    request = await self._read_request(reader, writer, conn, first)
                    conn.expect(BUSY, None)
                    status, body = 200, await self.route(request)
                    keep_alive = request.keep_alive
                except HttpError as err:
                    status, body = err.status, error_body(err)
                    keep_alive = request is not None and request.keep_alive and not err.close
                except (ConnectionError, asyncio.IncompleteReadError):
                    raise
                except Exception as exc:  # noqa: BLE001 - a bug must answer 500, never drop the connection
                    sys.stderr.write("affinetes: internal error\n%s" % traceback.format_exc())
                    status, body = 500, encode_json({"detail": "Internal server error: %s" % exc})
                    keep_alive = False
                if conn.closed:
                    break  # dropped by its deadline or at the cap: the answer has nowhere to go
                conn.expect(WRITE, limits.transfer_time(len(body)))
                head_only = request is not None and request.method == "HEAD"
                extra = 'WWW-Authenticate: Bearer realm="affinetes"\r\n' if status == 401 else ""
                writer.write(render_response(status, body, keep_alive, extra, head_only))
                await writer.drain()
                if not keep_alive:
                    if status >= 400:
                        await _linger(reader, writer)
                    break
                conn.expect(IDLE, limits.idle_timeout)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, or its deadline passed: nothing to answer
        finally:
            self.connections.pop(conn, None)
            conn.closed = True
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def _read_request(self, reader, writer, conn, first):
        try:
            head = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not (first + exc.partial).strip():
                raise  # closed before a request began: nothing to answer
            raise HttpError(400, "Incomplete request head", close=True)
        except asyncio.LimitOverrunError:
            raise HttpError(431, "Request head larger than %d bytes" % MAX_HEADER_BYTES, close=True)
        request = parse_head(head)
        # The token is checked before the body is read: a caller without it costs no memory.
        if self.token is not None and not (request.method in ("GET", "HEAD") and _is_health(request.path)):
            if not self._authorized(request.headers.get("authorization", "")):
                raise HttpError(
                    401,
                    "Unauthorized: this method server requires the token it was started with "
                    "(Authorization: Bearer <token>)",
                    close=True,
                )
            conn.trusted = True
        elif self.token is not None and self._authorized(request.headers.get("authorization", "")):
            conn.trusted = True  # a health probe of the owner
        length = body_length(request.headers, self.limits.max_body)
        if request.headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.expect(BODY, self.limits.transfer_time(length or 0))
        try:
            if length is None:
                request.body = await read_chunked(reader, self.limits.max_body, conn, self.limits)
            elif length:
                request.body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            # answered, in case the client only half-closed and still reads
            raise HttpError(400, "Request body cut short", close=True)
        if self.token is None:
            conn.trusted = True  # without a token, a client that sends whole requests is a client
        return request

    def _authorized(self, header):
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Constant time: how much of a guess matched must not show in how long the answer takes.
        return hmac.compare_digest(credentials.strip().encode("latin-1"), self.token)

    def _admit(self, writer):
        """Registers a new connection; at the cap, drops the oldest one that never proved the token, else refuses."""
        if len(self.connections) >= self.limits.max_connections:
            victim = next((c for c in self.connections if not c.trusted and c.phase != BUSY), None)
            if victim is None:
                detail = "Too many open connections (%d); try again later" % self.limits.max_connections
                writer.write(render_response(503, encode_json({"detail": detail}), False))
                writer.close()
                return None
            self.connections.pop(victim, None)
            victim.drop()
        conn = Connection(writer.transport, asyncio.get_event_loop())
        self.connections[conn] = None
        return conn

    async def sweep(self):
        """Closes connections past their phase's deadline: a slow or silent client holds nothing for long."""
        loop = asyncio.get_event_loop()
        interval = self.limits.sweep_interval
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in list(self.connections):
                if conn.deadline is None or now < conn.deadline:
                    continue
                self.connections.pop(conn, None)
                try:
                    if conn.phase in (HEAD, BODY):
                        conn.drop(408, "Request not received in time")
                    else:
                        conn.drop()
                except Exception:  # noqa: BLE001 - one odd transport must not end every deadline
                    sys.stderr.write("affinetes: could not close a connection\n%s" % traceback.format_exc())

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


async def _linger(reader, writer):
    """After an error answer: half-close, then read what the client still sends for a moment.
    Closing with its input unread would reset the connection, and the client could lose the answer."""
    try:
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(_discard(reader), LINGER_SECONDS)
    except Exception:  # noqa: BLE001 - closing anyway
        pass


async def _discard(reader):
    total = 0
    while total < LINGER_MAX_BYTES:
        chunk = await reader.read(64 * 1024)
        if not chunk:
            return
        total += len(chunk)


def _is_health(path):
    return (path.rstrip("/") or "/") == "/health"


def _require(request, *methods):
    if request.method not in methods:
        raise HttpError(405, "Method %s not allowed on %s; use %s" % (request.method, request.path, " or ".join(methods)))


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def _parse_object(body, allow_empty=False):
    if allow_empty and not body.strip():
        return {}
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(400, "Invalid JSON body: %s" % exc)
    except RecursionError:
        raise HttpError(400, "Invalid JSON body: nested too deeply")
    if not isinstance(payload, dict):
        raise HttpError(400, "Request body must be a JSON object, got %s" % _json_type(payload))
    return payload


def _split_direct_body(payload):
    """`{"args": [...], "kwargs": {...}}` is structured; any other object is the kwargs."""
    if payload and set(payload) <= {"args", "kwargs"}:
        return payload.get("args", []), payload.get("kwargs", {})
    return [], payload


# --------------------------------------------------------------------------- main


def _int_setting(name, default, minimum=None):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum):
        at_least = "" if minimum is None else " of at least %d" % minimum
        sys.stderr.write("affinetes: %s must be an integer%s, got %r\n" % (name, at_least, raw))
        sys.exit(2)
    return value


def _seconds_setting(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_CALL_TIMEOUT_SECONDS:  # NaN fails too
        sys.stderr.write("affinetes: %s must be a positive number of seconds, got %r\n" % (name, raw))
        sys.exit(2)
    return value


async def serve():
    env_path = os.environ.get("AFFINETES_ENV_PATH") or (sys.argv[1] if len(sys.argv) > 1 else "/app/env.py")
    host = os.environ.get("AFFINETES_HOST", "0.0.0.0")
    port = _int_setting("AFFINETES_PORT", 8000)
    max_workers = _int_setting("AFFINETES_MAX_WORKERS", 256, minimum=1)
    limits = Limits()
    # Taken out of the environment before env.py loads: its code and children never inherit it.
    token = os.environ.pop(AUTH_TOKEN_VARIABLE, "")

    env = Environment(env_path)
    server = Server(env, Dispatcher(env, max_workers), limits, token)
    listener = await asyncio.start_server(server.handle_connection, host, port, limit=MAX_HEADER_BYTES)
    sweeper = asyncio.ensure_future(server.sweep())
    bound_port = listener.sockets[0].getsockname()[1]
    # The process runtime reads this line to learn the port when it asked for port 0.
    sys.stdout.write(
        "affinetes: listening on %s:%d (env %s, %s)\n"
        % (host, bound_port, env.path, "token required" if token else "no token: open to any caller")
    )
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
    sweeper.cancel()
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
