"""The payments domain: pure Python, no gRPC, protobuf, tracing, logging or metrics imports."""
