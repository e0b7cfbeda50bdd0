"""The MCP server: sandbox and skill tools for agents, over streamable HTTP (``/mcp``) and stdio.

See docs/mcp.md. ``server.py`` defines the tools; ``backend.py`` (in-server: the services) and
``remote.py`` (``portside mcp`` over stdio: the REST API) are the two ways the tools reach them.
"""
