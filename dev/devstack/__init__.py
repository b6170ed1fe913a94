"""The local real stack behind dev/stack: its services, network, nodes, images and their helpers."""
