"""Call the Python server's `ask` tool (which elicits) with the Python SDK client, answering
the elicitation with the name "Ada". Usage: py_ask.py URL MODE"""

import asyncio
import sys

from mcp import Client
from mcp.types import ElicitResult


async def on_elicit(context, params):
    return ElicitResult(action="accept", content={"name": "Ada"})


async def main():
    async with Client(sys.argv[1], mode=sys.argv[2], elicitation_callback=on_elicit) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        name = "py__ask" if "py__ask" in tools else "ask"
        r = await client.call_tool(name, {})
        print("ASK-RESULT:" + " ".join(getattr(c, "text", "") for c in r.content), flush=True)


asyncio.run(main())
