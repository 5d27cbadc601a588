# Benchmark targets (see benchmarks/README.md). Included by the main Makefile, whose $(BIN) and
# $(STAMP) they use. Extra arguments: make bench BENCH_ARGS="--duration 3 --rounds 1".
# The server under test and the load generator run on different cores (benchmarks/pinning.py:
# by default the server on the first usable core, everything else on the others); choose them
# with BENCH_SERVER_CPUS / BENCH_CLIENT_CPUS (taskset lists, e.g. 1 and 0).
# The guard keeps `make -f Makefile -f mk/bench.mk ...` quiet when Makefile includes it too.
ifndef PAYMENTS_BENCH_MK
PAYMENTS_BENCH_MK := 1

BENCH_ARGS ?=
BENCH_SERVER_CPUS ?=
BENCH_CLIENT_CPUS ?=
BENCH_PIN := $(if $(BENCH_SERVER_CPUS),--server-cpus $(BENCH_SERVER_CPUS)) $(if $(BENCH_CLIENT_CPUS),--client-cpus $(BENCH_CLIENT_CPUS))

.PHONY: bench bench-replicas bench-soak bench-encoder bench-shared-limiter bench-count

bench: $(STAMP) ## Server CPU µs/call of full vs off vs proto vs floor (stores: BENCH_ARGS="--store memory,sqlite,postgresql"), pinned apart, 3 rounds
	$(BIN)/python -m benchmarks.run $(BENCH_PIN) $(BENCH_ARGS)

bench-replicas: $(STAMP) ## Scale-out: full on 1 vs 2 server processes sharing one SQLite file / PostgreSQL database (BENCH_ARGS=...)
	$(BIN)/python -m benchmarks.run $(BENCH_PIN) --configs full --store sqlite,postgresql --replicas 1,2 --out benchmarks/results/replicas.json $(BENCH_ARGS)

bench-soak: $(STAMP) ## Soak: 200 000 new payments on one full server, TTL 20 s; RSS growth <= 10 % (BENCH_ARGS=...)
	$(BIN)/python -m benchmarks.run $(BENCH_PIN) --soak $(BENCH_ARGS)

bench-count: $(STAMP) ## Instructions per call under callgrind (immune to a busy machine): full, off, floor (BENCH_ARGS=...)
	$(BIN)/python -m benchmarks.callcost $(BENCH_ARGS)

bench-encoder: $(STAMP) ## The SDK's OTLP span encoder vs the fast one: µs/span and GIL hold per batch
	$(BIN)/python -m benchmarks.encoder $(BENCH_ARGS)

bench-shared-limiter: $(STAMP) ## Cost per call of a rate limiter shared through PostgreSQL (one upsert per call)
	$(BIN)/python -m benchmarks.shared_limiter $(BENCH_ARGS)

endif
