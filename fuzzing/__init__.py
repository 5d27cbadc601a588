"""Property-based and byte-level fuzzing of payments.v1.PaymentService against the real server.

- `oracle`: what the server must answer, computed from the documented limits (never by calling
  the validator it checks), and a model of what the server has stored;
- `wire`: byte-level mutations of encoded messages (protobuf wire format);
- `strategies`: hypothesis strategies for field values and for mutations;
- `harness`: a real in-process server on port 0 and a real channel, driven from synchronous
  code, that sends each case and checks every property;
- `__main__`: the long campaign (`make fuzz`) with a histogram of status codes.

The test suite (tests/fuzz) runs the same properties with a small, derandomized budget.
"""
