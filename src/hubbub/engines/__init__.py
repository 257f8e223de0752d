"""Engines: the Broker (fan-out between nodes, history, presence) and the Store (durable data)."""
