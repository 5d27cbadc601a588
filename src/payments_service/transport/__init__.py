"""gRPC transport: servicer, message mapping, the error mapping and the server builder."""
