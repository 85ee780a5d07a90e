"""A Python `mcp` SDK server for Switchyard's integration tests (Streamable HTTP, loopback).

Usage: py_server.py PORT [--only 2026-07-28] [--public-hints] | py_server.py stdio

With `--only 2026-07-28` the server is pinned to that revision: a request in any other
(an `initialize`, a session, a GET stream) gets HTTP 400 with -32022, as a server that never
spoke the handshake era would answer.

With `--public-hints` its 2026-07-28 list and read results say `cacheScope: "public"` with a
`ttlMs` of 60 s (by default they say `private` and 0).
"""

import sys

import anyio

from pydantic import BaseModel, Field

from typing import Annotated

from mcp import types
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.server.subscriptions import InMemorySubscriptionBus

PUBLIC = CacheHint(ttl_ms=60_000, scope="public")
HINTS = (
    {m: PUBLIC for m in ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")}
    if "--public-hints" in sys.argv
    else None
)



class CountingBus(InMemorySubscriptionBus):
    """The SDK's bus, counting the listen streams open on it (for the `listen_streams` tool)."""

    open = 0

    def subscribe(self, listener):
        CountingBus.open += 1
        unsubscribe = super().subscribe(listener)
        done = False

        def counted_unsubscribe():
            nonlocal done
            if not done:
                done = True
                CountingBus.open -= 1
            unsubscribe()

        return counted_unsubscribe


server = MCPServer(
    "py-upstream",
    instructions="A Python SDK server behind Switchyard.",
    cache_hints=HINTS,
    subscriptions=CountingBus(),
)


LOG_LEVEL = "unset"


async def set_log_level(ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
    """`logging/setLevel` (handshake era): remembered, for the `log_level` tool."""
    global LOG_LEVEL
    LOG_LEVEL = params.level
    return types.EmptyResult()


server._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_log_level)


@server.tool()
def log_level() -> str:
    """The level this server was last asked to log at (`unset` if never)."""
    return LOG_LEVEL


@server.tool()
def listen_streams() -> int:
    """How many 2026 `subscriptions/listen` streams are open on this server."""
    return CountingBus.open


SHOUTS = 0


@server.tool()
def shout(text: str) -> str:
    """Upper-cases its text."""
    global SHOUTS
    SHOUTS += 1
    return text.upper()


@server.tool()
def shout_count() -> int:
    """How many times shout ran (for tests that a refused request never arrived)."""
    return SHOUTS


@server.tool()
async def count(n: int, ctx: Context) -> str:
    """Reports progress n times, then answers."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n)
    return f"counted to {n}"


@server.tool()
async def touch_tools(ctx: Context) -> str:
    """Tells the client the tool list changed (a legacy-era notification)."""
    await ctx.session.send_tool_list_changed()
    return "touched"


@server.tool()
async def chatty(ctx: Context) -> str:
    """Logs one line at info and one at error while it runs."""
    await ctx.info("chatty at info")
    await ctx.error("chatty at error")
    return "said things"


@server.tool()
async def touch_resource(uri: str, ctx: Context) -> str:
    """Announces that a resource changed (to the 2026 listen streams subscribed to it)."""
    await ctx.notify_resource_updated(uri)
    return "touched"


@server.tool()
def proto(ctx: Context) -> str:
    """The protocol version of the request being answered."""
    return str(ctx.protocol_version)


class Name(BaseModel):
    name: str


@server.tool()
async def ask(ctx: Context) -> str:
    """Asks the user for a name (elicitation; in 2026-07-28, a multi round-trip request)."""
    r = await ctx.elicit("What is your name?", Name)
    return f"{r.action}:{r.data.name if r.action == 'accept' else ''}"


def ask_for_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@server.tool()
async def ask_resolved(name: Annotated[Name, Resolve(ask_for_name)]) -> str:
    """Asks the user for a name through a resolver: a mid-call request in the handshake era,
    an `input_required` result in 2026-07-28."""
    return f"accept:{name.name}"


SLOW_DONE = 0


@server.tool()
async def slow(ms: int) -> str:
    """Sleeps ms milliseconds; counts the runs that were not cancelled."""
    global SLOW_DONE
    await anyio.sleep(ms / 1000)
    SLOW_DONE += 1
    return "slept"


@server.tool()
def slow_done() -> int:
    """How many `slow` runs finished (cancelled ones do not)."""
    return SLOW_DONE


@server.tool()
def route(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str = "") -> str:
    """Echoes its region, which a 2026-07-28 client also sends as the Mcp-Param-Region header
    (the SDK refuses a call whose header and argument disagree before it gets here)."""
    return f"routed to {region}"


def zoned_tool(header: str):
    """`zoned`, whose `zone` argument goes in the Mcp-Param-<header> header too."""

    def zoned(zone: Annotated[str, Field(json_schema_extra={"x-mcp-header": header})]) -> str:
        return f"zoned to {zone}"

    return zoned


server.add_tool(zoned_tool("Zone"), name="zoned", description="Echoes its zone.")


@server.tool()
async def rezone(ctx: Context) -> str:
    """Moves `zoned`'s argument from the Mcp-Param-Zone header to Mcp-Param-Area, and says
    the tool list changed (on 2026-07-28 listen streams)."""
    server.remove_tool("zoned")
    server.add_tool(zoned_tool("Area"), name="zoned", description="Echoes its zone.")
    await ctx.notify_tools_changed()
    return "rezoned"


@server.tool()
def seen_auth(ctx: Context) -> str:
    """The Authorization header this server received with the request ("none" if absent)."""
    headers = ctx.headers or {}
    return next((v for k, v in headers.items() if k.lower() == "authorization"), "none")


@server.resource("py://note")
def note() -> str:
    """A static note."""
    return "a note from python"


READS = 0


@server.resource("py://reads")
def reads() -> str:
    """How many times this resource was read here (for tests of shared caching)."""
    global READS
    READS += 1
    return f"read {READS}"


@server.prompt()
def summarize(topic: str) -> str:
    """Asks for a summary."""
    return f"Summarize {topic}."


def pinned(app, version):
    """ASGI middleware that lets through only requests whose MCP-Protocol-Version is `version`."""
    import json

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            got = headers.get(b"mcp-protocol-version", b"").decode("latin-1")
            if got != version:
                body = json.dumps({
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {
                        "code": -32022,
                        "message": f"unsupported protocol version {got!r}: this server speaks only {version}",
                        "data": {"supported": [version], "requested": got},
                    },
                }).encode()
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    elif "--only" in sys.argv:
        import uvicorn

        version = sys.argv[sys.argv.index("--only") + 1]
        app = pinned(server.streamable_http_app(), version)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    elif "--hypercorn" in sys.argv:
        # Under hypercorn: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port.
        import asyncio

        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{sys.argv[1]}"]
        config.loglevel = "WARNING"
        asyncio.run(serve(server.streamable_http_app(), config))
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
