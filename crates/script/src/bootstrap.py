# Bootstrap of ssmd-script: runs the handler of one aws:executeScript step and reports its result.
#
# ssmd starts `python3 -u -c <this program> <result path>` and writes one JSON object to stdin:
# {"script", "handler", "events", "context", "max_payload"}. The script is executed in a fresh
# module, `handler(events, context)` is called, and the outcome goes to the result file, never to
# stdout, which belongs to the user's own print() output:
#   {"ok": true, "payload": <return value>}                      exit status 0
#   {"ok": false, "error": "<one line>", "traceback": "<text>"}  exit status 1
# Kept compatible with Python 3.6, the oldest runtime AWS lists.

import json
import linecache
import os
import sys
import traceback
import types

SCRIPT_FILE = "<script>"
MODULE_NAME = "script"
TEXT_LIMIT = 20000


def clip(text):
    if len(text) <= TEXT_LIMIT:
        return text
    return text[:TEXT_LIMIT] + "\n... (truncated)"


def finish(result_path, document, status):
    # Write next to the final name and rename, so ssmd never reads half a result.
    partial = result_path + ".partial"
    with open(partial, "w", encoding="ascii") as out:
        out.write(document)
    os.replace(partial, result_path)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    # Leave at once: threads the script left running must not keep the step alive.
    os._exit(status)


def failure(error, trace=""):
    return json.dumps({"ok": False, "error": clip(error), "traceback": clip(trace)})


def raised(exc, frames, prefix=""):
    # `frames` is the traceback without the bootstrap's own frame.
    if isinstance(exc, SystemExit):
        if exc.code is None or exc.code == 0:
            error = "the handler did not return: the script called sys.exit(%r)" % (exc.code,)
        else:
            error = "the script called sys.exit(%r)" % (exc.code,)
    else:
        error = traceback.format_exception_only(type(exc), exc)[-1].strip()
    trace = "".join(traceback.format_exception(type(exc), exc, frames))
    return failure(prefix + error, trace)


def defined_functions(namespace):
    names = [n for n, v in namespace.items() if isinstance(v, types.FunctionType) and not n.startswith("_")]
    return sorted(names)


def main():
    result_path = sys.argv[1]
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    sys.argv = [SCRIPT_FILE]
    source = request["script"]
    handler_name = request["handler"]

    # Tracebacks show the script's lines: register the source under its pseudo file name.
    linecache.cache[SCRIPT_FILE] = (len(source), None, source.splitlines(True), SCRIPT_FILE)
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = SCRIPT_FILE
    sys.modules[MODULE_NAME] = module

    try:
        code = compile(source, SCRIPT_FILE, "exec", dont_inherit=True)
    except Exception as exc:
        finish(result_path, raised(exc, None, "the script does not compile: "), 1)

    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        finish(result_path, raised(exc, exc.__traceback__.tb_next, "the script failed while loading: "), 1)

    handler = module.__dict__.get(handler_name)
    if handler is None:
        functions = defined_functions(module.__dict__)
        known = ", ".join(functions) if functions else "none"
        error = "the script defines no handler named %r (functions it defines: %s)" % (handler_name, known)
        finish(result_path, failure(error), 1)
    if not callable(handler):
        error = "the handler %r is a %s, not a function" % (handler_name, type(handler).__name__)
        finish(result_path, failure(error), 1)

    try:
        result = handler(request["events"], request["context"])
    except BaseException as exc:
        finish(result_path, raised(exc, exc.__traceback__.tb_next), 1)

    try:
        text = json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(text.encode("utf-8", "surrogatepass"))
        payload = json.dumps(result, allow_nan=False, separators=(",", ":")) if size <= request["max_payload"] else None
    except Exception as exc:
        error = "the handler's return value is not JSON-serialisable: %s: %s" % (type(exc).__name__, exc)
        finish(result_path, failure(error), 1)
    if payload is None:
        limit = request["max_payload"]
        error = "the handler's output is too large: %d bytes of JSON, over the %d-byte (100 KB) limit" % (size, limit)
        finish(result_path, failure(error), 1)
    finish(result_path, '{"ok":true,"payload":' + payload + "}", 0)

main()
