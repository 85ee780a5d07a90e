"""Drive Switchyard with the Python `mcp` SDK client (legacy handshake era).

Usage:
  py_client.py http URL [MODE] [--elicit]
  py_client.py stdio SWITCHYARD_BINARY CONFIG

MODE is the SDK's connect mode: legacy (the default), auto, or 2026-07-28; or a handshake-era
version (2025-03-26, 2025-06-18, 2025-11-25): legacy mode with `initialize` offering that
version, which must be the one negotiated.

With --elicit the client declares elicitation, answers every question with the name "Ada", and
checks that both servers' asking tools reach it: server-everything's
trigger-elicitation-request (a handshake-era server asking mid-call) and py's ask_resolved.

Switchyard must front server-everything as `everything` and tests/peers/py_server.py as `py`.
Prints one line per check and exits non-zero on the first failure.
"""

import asyncio
import sys

import mcp.client.session
from mcp import Client, StdioServerParameters
from mcp.types import ElicitResult

HANDSHAKE_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def text_of(result):
    return " ".join(getattr(c, "text", "") for c in result.content)


async def on_elicit(context, params):
    return ElicitResult(action="accept", content={"name": "Ada"})


async def main():
    mode = "legacy"
    args = [a for a in sys.argv[1:] if a != "--elicit"]
    elicit = "--elicit" in sys.argv
    if args[0] == "http":
        target = args[1]
        mode = args[2] if len(args) > 2 else "legacy"
    else:
        target = StdioServerParameters(command=args[1], args=["stdio", "--config", args[2]])
    pinned = mode if mode in HANDSHAKE_VERSIONS else None
    if pinned:
        # The SDK offers its newest handshake version; it has no public knob for an older one,
        # so the version it sends in `initialize` is set here. Everything after follows what
        # was negotiated.
        mcp.client.session.LATEST_HANDSHAKE_VERSION = pinned
        mode = "legacy"
    callbacks = {"elicitation_callback": on_elicit} if elicit else {}
    async with Client(target, mode=mode, **callbacks) as client:
        negotiated = client.session.protocol_version
        print(f"connected in mode {mode}: protocol {negotiated}", flush=True)
        if pinned:
            check(negotiated == pinned, f"protocol {pinned} negotiated ({negotiated})")
        tools = {t.name for t in (await client.list_tools()).tools}
        check({"everything__echo", "everything__get-sum", "py__shout", "py__count"} <= tools,
              f"tools of both servers listed ({len(tools)} tools)")

        r = await client.call_tool("everything__echo", {"message": "through switchyard"})
        check(text_of(r) == "Echo: through switchyard", "everything__echo answers with the server's own text")
        r = await client.call_tool("everything__get-sum", {"a": 2, "b": 40})
        check("42" in text_of(r), "everything__get-sum adds")
        r = await client.call_tool("py__shout", {"text": "quiet"})
        check(text_of(r) == "QUIET", "py__shout answers from the Python server")
        # Its region is an x-mcp-header argument: whichever era this client speaks, the
        # Python server sees an Mcp-Param-Region header that agrees with it (base64 here).
        r = await client.call_tool("py__route", {"region": "Zürich"})
        check(text_of(r) == "routed to Zürich", f"py__route: Mcp-Param-Region agreed at every hop ({text_of(r)})")

        progress = []

        async def on_progress(p, total, message):
            progress.append(p)

        r = await client.call_tool("py__count", {"n": 3}, progress_callback=on_progress)
        check(text_of(r) == "counted to 3", "py__count answers")
        check(progress == [1, 2, 3], f"progress of py__count reached this client ({progress})")

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        check("py__summarize" in prompts and any(p.startswith("everything__") for p in prompts),
              f"prompts of both servers listed ({sorted(prompts)})")
        g = await client.get_prompt("py__summarize", {"topic": "routers"})
        check(g.messages[0].content.text == "Summarize routers.", "py__summarize prompt rendered by the Python server")

        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        check("py://note" in resources and any(u.startswith("demo://") for u in resources),
              f"resources of both servers listed ({len(resources)})")
        rr = await client.read_resource("py://note")
        check(rr.contents[0].text == "a note from python", "py://note read from the Python server")
        some = sorted(u for u in resources if u.startswith("demo://resource/static/document/"))[0]
        rr = await client.read_resource(some)
        check(len(rr.contents[0].text) > 0, f"{some} read from server-everything")

        templates = (await client.list_resource_templates()).resource_templates
        check(len(templates) > 0, f"resource templates listed ({len(templates)})")

        if elicit:
            tools = {t.name for t in (await client.list_tools()).tools}
            check("everything__trigger-elicitation-request" in tools,
                  "server-everything offers its elicitation tool (it was told of elicitation)")
            r = await client.call_tool("everything__trigger-elicitation-request", {})
            check("- Name: Ada" in text_of(r), "server-everything's question answered by this client")
            r = await client.call_tool("py__ask_resolved", {})
            check(text_of(r) == "accept:Ada", f"py's question answered by this client ({text_of(r)})")

        try:
            await client.call_tool("nobody__nothing", {})
            check(False, "an unknown tool is refused")
        except Exception as e:  # the SDK raises MCPError for a JSON-RPC error
            check("unknown tool" in str(e), f"an unknown tool is refused ({e})")
    print("PY-CLIENT-OK", flush=True)


asyncio.run(main())
