"""The agent registry: agents as HTTP endpoints or worker capabilities."""
