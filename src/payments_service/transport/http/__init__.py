"""The JSON/HTTP transport: grpc-gateway's mapping of payments.v1, served in-process.

- `routes`: the route table, derived from the proto's `google.api.http` options at startup;
- `status`: the one mapping from a gRPC code to an HTTP status, and the error body;
- `transcoding`: JSON request bodies and path parameters to proto messages and back;
- `observation`: the thin observation point (the HTTP twin of the gRPC observation
  interceptor): the call record, the SERVER span, admission, authentication and the answer;
- `server`: the aiohttp listener and its lifecycle.
"""
