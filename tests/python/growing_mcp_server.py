"""A real MCP server built with the official Python SDK, for the test of
tools/list_changed: calling `grow` adds a tool at run time and notifies the
client that the tool list changed."""
from mcp.server.mcpserver import MCPServer, Context

app = MCPServer("growing")

def extra() -> str:
    """A tool added at run time."""
    return "extra!"

@app.tool()
async def grow(ctx: Context) -> str:
    """Add the `extra` tool and tell the client its tool list changed."""
    app.add_tool(extra)
    await ctx.session.send_tool_list_changed()
    return "grown"

if __name__ == "__main__":
    app.run()
