"""Fault injection against the real servers: for each fault, what the client sees, that nothing
written before it is lost, and how long the same service process takes to recover."""
