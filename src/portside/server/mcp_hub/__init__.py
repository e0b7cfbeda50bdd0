"""The MCP hub: Portside as an MCP *client* of registered servers (stdio, streamable HTTP, SSE)."""
