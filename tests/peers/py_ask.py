"""Call the Python server's `ask` tool (which elicits) with the Python SDK client, answering
the elicitation with the name "Ada". Usage: py_ask.py URL MODE [TOOL]"""

import asyncio
import sys

from mcp import Client
from mcp.types import ElicitResult


async def on_elicit(context, params):
    return ElicitResult(action="accept", content={"name": "Ada"})


async def main():
    async with Client(sys.argv[1], mode=sys.argv[2], elicitation_callback=on_elicit) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        tool = sys.argv[3] if len(sys.argv) > 3 else "ask"
        name = f"py__{tool}" if f"py__{tool}" in tools else tool
        r = await client.call_tool(name, {})
        print("ASK-RESULT:" + " ".join(getattr(c, "text", "") for c in r.content), flush=True)


asyncio.run(main())
