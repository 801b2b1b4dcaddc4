"""Baseline for benches/mcp.rs: the official Python MCP SDK client calling a
stdio server. Prints JSON: spawn-to-ready times (process start to
initialize + tools/list done, ms) and per-call round trips (µs) of one
tool. Usage: mcp_bench_client.py SPAWNS CALLS TOOL ARGS_JSON COMMAND [ARG...]"""
import asyncio
import json
import statistics
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

SPAWNS, CALLS = int(sys.argv[1]), int(sys.argv[2])
TOOL, ARGS = sys.argv[3], json.loads(sys.argv[4])
PARAMS = StdioServerParameters(command=sys.argv[5], args=sys.argv[6:])


async def main():
    spawns = []
    calls = []
    for i in range(SPAWNS):
        t = time.perf_counter()
        async with stdio_client(PARAMS) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                await s.list_tools()
                spawns.append((time.perf_counter() - t) * 1e3)
                if i == 0:
                    for _ in range(CALLS):
                        c = time.perf_counter()
                        res = await s.call_tool(TOOL, ARGS)
                        calls.append((time.perf_counter() - c) * 1e6)
                        assert not res.is_error
    calls.sort()
    print(json.dumps({
        "spawn_ms": spawns,
        "call_p50_us": statistics.median(calls),
        "call_p99_us": calls[int(len(calls) * 0.99) - 1],
    }))


asyncio.run(main())
