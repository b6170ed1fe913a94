"""The local real stack behind dev/stack: services, node agent and their helpers."""
