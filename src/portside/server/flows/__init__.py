"""Flows: durable DAG orchestration of agents, worker tasks, sandboxes and skills."""
