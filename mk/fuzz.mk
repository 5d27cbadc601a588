# The long fuzzing campaign (see docs/fuzzing.md). Included by the main Makefile, whose $(BIN)
# and $(STAMP) it uses. The suite (`make test`) runs the same properties with a small budget.
# Extra arguments: make fuzz FUZZ_ARGS="--cases 40000 --seed 7" (or FUZZ_CASES / FUZZ_SEED).
ifndef PAYMENTS_FUZZ_MK
PAYMENTS_FUZZ_MK := 1

FUZZ_ARGS ?=

.PHONY: fuzz

fuzz: $(STAMP) ## Fuzz gRPC (fields, bytes) and JSON/HTTP (fields, bytes, headers, paths): 20 000 cases; code histogram (FUZZ_ARGS=...)
	$(BIN)/python -m fuzzing $(FUZZ_ARGS)

endif
