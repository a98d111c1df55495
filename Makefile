# clickstage — the workflow is the targets:
#   make            release build of the library and every binary (build/)
#   make test       unit + model tests (installs missing Debian packages first)
#   make asan-test  the same under ASan+UBSan (build-asan/)
#   make tsan-test  the multi-thread stress tests under ThreadSanitizer (build-tsan/)
#   make fuzz       build libFuzzer targets (build-fuzz/) and run each for FUZZ_SECONDS
#   make bench      in-process core benchmark (bench/bench_core), last line JSON
#   make profile    one drain under perf: CPU by thread and by symbol into bench/out/
#   make bench-redteam  hostile/huge inputs (bench/bench_redteam), last line JSON
#   make bench-wait     flush latency with and without WAIT for replicas (bench/bench_wait)
#   make test-redis-ha  Redis Cluster and Sentinel failovers and a slot migration, counts exact
#   make deps       install what is missing from Debian (no-op when all is there)
#   make ci         what .ci/run runs
# Every build flavour has its own directory so they never mix objects.

CC ?= cc
BUILD ?= build
WERROR ?=
OPT ?= -O2
SAN ?=
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter $(WERROR) \
              -g $(OPT) -pthread -Iinclude -Ipipeline -Iloadgen -Itests/support $(SAN)
ifneq ($(wildcard cmd/clickstage/http.c),)
CFLAGS_BASE += -DCS_HAVE_HTTP
endif
LDLIBS_CORE = -lxxhash -lyaml -lcrypto -lm -pthread
LDLIBS_KAFKA = -lrdkafka
LDLIBS_REDIS = -lhiredis
LDLIBS_HTTP = -lmicrohttpd
LDLIBS_TEST = -lcmocka

PIPELINE_SRC = $(sort $(wildcard pipeline/*.c))
# the stages that talk to Kafka or Redis (librdkafka, hiredis); the fuzzers build without them
IO_SRC = $(filter pipeline/source.c pipeline/sink.c pipeline/redis.c pipeline/coord.c pipeline/metrics.c,$(PIPELINE_SRC))
CORE_SRC = $(filter-out $(IO_SRC),$(PIPELINE_SRC))
CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/%.o)
IO_OBJ = $(IO_SRC:%.c=$(BUILD)/%.o)
LIB = $(BUILD)/libclickstage.a
UNIT_SRC = $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
LOADGEN_SRC = $(sort $(wildcard loadgen/*.c))
LOADGEN_OBJ = $(LOADGEN_SRC:%.c=$(BUILD)/%.o)

BINS = $(BUILD)/clickstage-rules
ifneq ($(wildcard cmd/clickstage/main.c),)
BINS += $(BUILD)/clickstage
endif
ifneq ($(wildcard cmd/clickstage-loadgen/main.c),)
BINS += $(BUILD)/clickstage-loadgen
endif
ifneq ($(wildcard cmd/clickstage-top/main.c),)
BINS += $(BUILD)/clickstage-top
endif
ifneq ($(wildcard cmd/clickstage-repartition/main.c),)
BINS += $(BUILD)/clickstage-repartition
endif

.SECONDARY:
.PHONY: tools all test unit asan-test tsan-test fuzz fuzz-build bench deps ci clean
all: $(LIB) $(BINS)

# -MMD: every object also depends on what it #includes (test_config.c includes config.c).
$(BUILD)/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -MMD -MP -c $< -o $@
-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)

$(LIB): $(CORE_OBJ) $(IO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/clickstage-rules: $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/clickstage-rules/*.c)) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_CORE)
# The web view (cmd/clickstage/web/*) compiled into the daemon: scripts/embed-assets.sh (sh + od + sed)
WEB_ASSETS = $(sort $(wildcard cmd/clickstage/web/*))
$(BUILD)/gen/web_assets.c: scripts/embed-assets.sh $(WEB_ASSETS)
	@mkdir -p $(dir $@)
	sh scripts/embed-assets.sh $@ $(WEB_ASSETS)
$(BUILD)/gen/web_assets.o: $(BUILD)/gen/web_assets.c
	$(CC) $(CFLAGS_BASE) -c $< -o $@
$(BUILD)/clickstage: $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/clickstage/*.c)) $(BUILD)/gen/web_assets.o $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_KAFKA) $(LDLIBS_REDIS) $(LDLIBS_HTTP) $(LDLIBS_CORE)
# The load generator's ground truth comes from the reference model in loadgen/ (cJSON-based,
# shares no code path with the daemon's pipeline beyond the rule table).
$(BUILD)/clickstage-loadgen: $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/clickstage-loadgen/*.c)) $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_KAFKA) $(LDLIBS_REDIS) $(LDLIBS_CORE) -lcjson -llz4
$(BUILD)/clickstage-repartition: $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/clickstage-repartition/*.c)) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_KAFKA) $(LDLIBS_CORE)
$(BUILD)/clickstage-top: $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/clickstage-top/*.c)) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_REDIS) -lncursesw $(LDLIBS_CORE)

# tests/support: the unit tests' own redis-server and mock Kafka cluster, and their run of the core
# over a generated stream (engine_run.c); not shipped
TESTSUPPORT_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tests/support/*.c)))
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TESTSUPPORT_OBJ) $(LOADGEN_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS_TEST) $(LDLIBS_KAFKA) $(LDLIBS_REDIS) $(LDLIBS_CORE) -lcjson
# the daemon's option table is not in the library: test_config links it
$(BUILD)/tests/test_config: $(BUILD)/cmd/clickstage/config.o
$(BUILD)/tests/unit/test_config.o: CFLAGS_BASE += -Icmd/clickstage
# the load generator's producers (direct and librdkafka) are not in a library either
LG_PROD_OBJ = $(patsubst %.c,$(BUILD)/%.o,cmd/clickstage-loadgen/produce.c cmd/clickstage-loadgen/direct.c cmd/clickstage-loadgen/hist.c)
$(BUILD)/tests/test_loadgen_direct: $(LG_PROD_OBJ)
$(BUILD)/tests/test_loadgen_direct: LDLIBS_TEST += -llz4
$(BUILD)/tests/unit/test_loadgen_direct.o: CFLAGS_BASE += -Icmd/clickstage-loadgen

# Test tools for the integration tests (producer with expected counts, Redis checker).
TOOLS = $(BUILD)/cs_checkredis $(BUILD)/cs_mockbroker
$(BUILD)/cs_%: $(BUILD)/tests/tools/cs_%.o $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_KAFKA) $(LDLIBS_REDIS) $(LDLIBS_CORE) -lcjson
tools: $(TOOLS)

# Runs every unit test binary; the last line is "N passed, N failed" over all tests.
unit: $(UNIT_BIN)
	@tests/run-unit.sh $(BUILD) $(abspath $(UNIT_BIN))

test: deps
	tests/run-all.sh

asan-test: deps
	$(MAKE) BUILD=build-asan CC=clang OPT=-O1 SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" unit

# TSan: only the tests whose name says they exercise threads (test_*mt*), on fewer events.
tsan-test: deps
	CS_MODEL_EVENTS=200000 $(MAKE) BUILD=build-tsan CC=clang OPT=-O1 SAN="-fsanitize=thread" \
	  UNIT_SRC="$(wildcard tests/unit/test_*mt*.c)" unit

FUZZ_SRC = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 30
build-fuzz/%: tests/fuzz/%.c $(PIPELINE_SRC) $(wildcard pipeline/*.h include/*.h cmd/clickstage/*.c cmd/clickstage/*.h)
	@mkdir -p build-fuzz
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Ipipeline -Icmd/clickstage \
	  -fsanitize=fuzzer,address,undefined \
	  -o $@ $< $(CORE_SRC) $(if $(filter fuzz_config,$*),cmd/clickstage/config.c) $(LDLIBS_CORE) -lcjson
fuzz-build: deps $(FUZZ_BIN)
fuzz: fuzz-build
	@p=0; f=0; for t in $(FUZZ_BIN); do n=$$(basename $$t); mkdir -p build-fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  if $$t -max_total_time=$(FUZZ_SECONDS) -max_len=70000 build-fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} >build-fuzz/$$n.log 2>&1; \
	  then p=$$((p+1)); tail -1 build-fuzz/$$n.log; else f=$$((f+1)); tail -40 build-fuzz/$$n.log; fi; done; \
	  echo "fuzz: $$p passed, $$f failed"; [ $$f -eq 0 ]

bench: deps
	$(MAKE) $(BUILD)/bench_core
	./$(BUILD)/bench_core $(BENCH_ARGS)
# simdjson On-Demand beside the scanner in bench_core when libsimdjson-dev is installed (an
# optional dependency of this benchmark only; without it the JSON has null for its figures).
# On-Demand has no run-time dispatch in simdjson 3.0: the anchor is compiled for simdjson's
# haswell kernel (AVX2, BMI1, PCLMUL, LZCNT) when this machine's CPU has them, else its scalar
# fallback; bench_core names the kernel (bench/simdjson_anchor.cpp). Not icelake (AVX-512),
# which simdjson's own dispatch would pick on a CPU with VBMI2: 3-4 % slower than haswell on
# bench_core's messages (RESULTS-e2e.md, "the node's own target"). A stamp named after both
# choices rebuilds the two objects when either changes (libsimdjson-dev installed after a
# build); it is touched when make reads this file, because a rule would not run: .SECONDARY
# (above) lets a missing prerequisite stay missing while its target is up to date.
HAVE_SIMDJSON := $(shell test -f /usr/include/simdjson.h && echo 1)
SIMDJSON_KERNEL := $(shell f=$$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null); for x in avx2 bmi1 pclmulqdq abm; do echo " $$f " | grep -q " $$x " || { echo fallback; exit 0; }; done; echo haswell)
SIMDJSON_FLAGS_haswell := -mavx2 -mbmi -mpclmul -mlzcnt
SIMDJSON_STAMP := $(BUILD)/bench/.simdjson-$(or $(HAVE_SIMDJSON),0)-$(SIMDJSON_KERNEL)
$(shell test -f $(SIMDJSON_STAMP) || { mkdir -p $(BUILD)/bench && rm -f $(BUILD)/bench/.simdjson-* && touch $(SIMDJSON_STAMP); })
$(BUILD)/bench/bench_core.o: $(SIMDJSON_STAMP)
ifeq ($(HAVE_SIMDJSON),1)
$(BUILD)/bench/bench_core.o: CFLAGS_BASE += -DCS_HAVE_SIMDJSON
$(BUILD)/bench/simdjson_anchor.o: bench/simdjson_anchor.cpp bench/simdjson_anchor.h $(SIMDJSON_STAMP) | deps-check
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra $(WERROR) $(SIMDJSON_FLAGS_$(SIMDJSON_KERNEL)) -Ibench -c $< -o $@
$(BUILD)/bench_core: $(BUILD)/bench/bench_core.o $(BUILD)/bench/simdjson_anchor.o $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_CORE) -lcjson -lsimdjson -lstdc++
else
$(BUILD)/bench_core: $(BUILD)/bench/bench_core.o $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_CORE) -lcjson
endif
# The first stage of a simdjson-style structural scanner alone on bench_core's messages
# (bench/stage1_probe.c; issue 18, measured and not adopted): run it under callgrind.
$(BUILD)/stage1_probe: $(BUILD)/bench/stage1_probe.o $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_CORE) -lcjson
# Snapshot size and restore time per million sessions (bench/bench_restore.c), last line JSON.
bench-restore: deps
	$(MAKE) $(BUILD)/bench_restore
	./$(BUILD)/bench_restore $(BENCH_ARGS)
$(BUILD)/bench_restore: $(BUILD)/bench/bench_restore.o $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_CORE) -lcjson
.PHONY: bench-restore
# What hostile or huge inputs cost: pathological globs, 10,000-rule files, hostile YAML, 1M
# dimension values, deep/huge JSON (bench/bench_redteam.c), last line JSON.
bench-redteam: deps
	$(MAKE) $(BUILD)/bench_redteam
	./$(BUILD)/bench_redteam $(BENCH_ARGS)
$(BUILD)/bench_redteam: $(BUILD)/bench/bench_redteam.o $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_CORE) -lcjson
.PHONY: bench-redteam
# The decoder alone in CPU time (bench/bench_decode.c); bench/decode-ab.sh times it against
# another checkout's build in the same run.
bench-decode: deps
	$(MAKE) $(BUILD)/bench_decode
	./$(BUILD)/bench_decode $(BENCH_ARGS)
$(BUILD)/bench_decode: $(BUILD)/bench/bench_decode.o $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_CORE) -lcjson
# Formats (issue 19): the unit tests, then every format and the stacks' own client libraries
# through a real broker and redis-server (tests/integration/run.sh cases formats, formats_sdk).
test-formats: deps $(BUILD)/tests/test_formats $(BUILD)/tests/test_formats_model
	@tests/run-unit.sh $(BUILD) $(abspath $(BUILD)/tests/test_formats $(BUILD)/tests/test_formats_model)
	CASES="formats formats_sdk" tests/integration/run.sh
.PHONY: bench-decode test-formats
# What redis_wait_replicas (WAIT after each flush) costs on flush latency: its own master and two
# replicas on loopback (bench/bench_wait.c), last line JSON.
bench-wait: deps
	$(MAKE) $(BUILD)/bench_wait
	./$(BUILD)/bench_wait $(BENCH_ARGS)
$(BUILD)/bench_wait: $(BUILD)/bench/bench_wait.o $(TESTSUPPORT_OBJ) $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_KAFKA) $(LDLIBS_REDIS) $(LDLIBS_CORE) -lcjson
.PHONY: bench-wait
# The generator's writing speed against the one before issue 15 (bench/bench_gen.c): the old
# generator is built from git (2cf2765's tests/lib/gen.c, symbols renamed cs_oldgen_*) into the
# same program. Last stdout line is JSON.
OLDGEN_REV = 2cf2765
bench-gen: deps
	$(MAKE) $(BUILD)/bench_gen
	./$(BUILD)/bench_gen $(BENCH_ARGS)
$(BUILD)/bench/oldgen/gen_old.o:
	@mkdir -p $(dir $@)
	git show $(OLDGEN_REV):tests/lib/gen.c >$(BUILD)/bench/oldgen/gen_old.c
	git show $(OLDGEN_REV):tests/lib/gen.h >$(BUILD)/bench/oldgen/gen.h
	$(CC) $(filter-out -Iloadgen,$(CFLAGS_BASE)) -I$(BUILD)/bench/oldgen \
	  -Dcs_gen_new=cs_oldgen_new -Dcs_gen_next=cs_oldgen_next -Dcs_gen_destroy=cs_oldgen_destroy \
	  -Dcs_gen_run=cs_oldgen_run -Dcs_gen_free=cs_oldgen_free -Dcs_gen_defaults=cs_oldgen_defaults \
	  -Dcs_gen_partition=cs_oldgen_partition -c $(BUILD)/bench/oldgen/gen_old.c -o $@
$(BUILD)/bench_gen: $(BUILD)/bench/bench_gen.o $(BUILD)/bench/oldgen/gen_old.o $(LOADGEN_OBJ) $(LIB)
	$(CC) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS_CORE) -lcjson
.PHONY: bench-gen
# Is the load generator faster than what it tests? New vs old generator and clickstage --drain
# on its own local stack, and against librdkafka's mock cluster (bench/bench_loadgen.sh;
# LG_EVENTS, LG_RUNS, LG_BASE_REV). Last stdout line is JSON.
bench-loadgen: deps all tools
	BUILD=$(BUILD) bench/bench_loadgen.sh
.PHONY: bench-loadgen
# The highest rate clickstage sustains here (p99 under 500 ms, lag not growing), SUS_RUNS times
# with clickstage-loadgen --find-sustainable on its own local stack (bench/bench_sustain.sh).
bench-sustain: deps all
	BUILD=$(BUILD) bench/bench_sustain.sh
.PHONY: bench-sustain
# What snapshots cost end to end: --drain with snapshots off / every 30 s / every 1 s on a local
# stack (bench/bench_state.sh; EVENTS, RUNS, BASELINE_BIN=<older build> for a before/after).
bench-state: deps all
	BUILD=$(BUILD) bench/bench_state.sh
.PHONY: bench-state
# Weeks in minutes (issue 12): one clickstage process under partition churn (joiners every few
# seconds), customer churn, SIGHUP reloads and fast event time on its own local stack; RSS, tick
# and flush cost, sessions, Redis memory and keys sampled and checked flat, counts exact at the end
# (bench/soak.sh; SOAK_MINUTES, default 20). test-soak: the bounded CI profile (3 min of traffic).
soak: deps all tools
	BUILD=$(BUILD) bench/soak.sh
test-soak: deps all tools
	BUILD=$(BUILD) SOAK_PROFILE=ci bench/soak.sh
.PHONY: soak test-soak

# Debian packages the build, tests and local stack need. Installs only what is missing.
DEB_PKGS = build-essential clang libclang-rt-14-dev pkg-config librdkafka-dev libhiredis-dev \
  libxxhash-dev libyaml-dev libssl-dev libmicrohttpd-dev libncurses-dev libcmocka-dev libcjson-dev liblz4-dev \
  redis-server kcat tmux valgrind gnuplot-nox python3-venv shellcheck stunnel4 locales
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
deps-check: ;

ci: test

clean:
	rm -rf build build-asan build-tsan build-fuzz

# Local stack (real Kafka broker from Maven Central jars + redis-server), no Docker.
STACK_DIR ?= $(CURDIR)/.stack
export STACK_DIR
.PHONY: stack-up stack-down stack-status stack-selftest integration
stack-up: deps
	scripts/stack.sh up $(STACK_DIR)
stack-down:
	scripts/stack.sh down $(STACK_DIR)
stack-status:
	scripts/stack.sh status $(STACK_DIR)
stack-selftest: deps
	scripts/stack-selftest.sh
# The README's first command: the whole pipeline on this machine (scripts/demo.sh).
demo: deps
	scripts/demo.sh
.PHONY: demo
# The daemon against the local stack (started if needed), in the foreground.
run: all
	scripts/run-local.sh $(ARGS)
.PHONY: run
test-http: deps
	tests/http/run.sh
.PHONY: test-http
# Deployment files: lint/validate without Docker, then the release build on the local stack
# with environment-only configuration (docs/deploy.md). DEPLOY_CHECK_ARGS=--static: no build/stack.
deploy-check: deps
	scripts/deploy-check.sh $(DEPLOY_CHECK_ARGS)
.PHONY: deploy-check
top-test: deps
	tests/top/run.sh
.PHONY: top-test
# End-to-end benchmark on its own local stack: drain, naive one-HINCRBY-per-event reference,
# live latency and lag, CPU by role, sweep, codecs, the floor (bench/bench_e2e.sh; knobs E2E_EVENTS,
# E2E_PARTS, LIVE_RATE, LIVE_SECONDS, ...).
bench-e2e: deps all tools
	BUILD=$(BUILD) bench/bench_e2e.sh
.PHONY: bench-e2e
# One drain under perf: CPU by thread (/proc) and by symbol (perf report) into bench/out/
# (bench/profile.sh; knobs PROFILE_EVENTS, PROFILE_THREADS, PROFILE_FETCH_THREADS, ...).
profile: deps all tools
	BUILD=$(BUILD) bench/profile.sh
.PHONY: profile
# Load generator -> real Kafka -> clickstage --drain -> Redis checked against the generator's
# ground truth (E2E_EVENTS, default 1M).
e2e: all tools
	CASES=e2e_loadgen tests/integration/run.sh
.PHONY: e2e
# Fault suite (tests/faults/run.sh): kill -9, members joining and leaving, Redis and broker
# restarts, Redis coming back empty, a SIGSTOPped zombie; every §4 hash checked against the
# generator's ground truth. FAULTS_PROFILE=ci is the bounded subset .ci/run runs.
test-faults: deps all tools
	BUILD=$(BUILD) tests/faults/run.sh
.PHONY: test-faults
# clickstage-loadgen through a real broker: partitions byte-identical for 1/4 threads and a
# stream sent in parts, --watch-redis latency against a live daemon, a short --find-sustainable,
# the direct producer's partitions byte-identical to librdkafka's and a drain of them exact.
test-loadgen: deps all tools
	BUILD=$(BUILD) tests/loadgen/run.sh
.PHONY: test-loadgen
# Integration tests: their own stack in a temp dir, stopped at the end.
integration: deps
	tests/integration/run.sh
# Redis Cluster (3 masters + 3 replicas) and Sentinel (master, replica, 3 sentinels) on loopback:
# a drain, failovers after a replica missed acknowledged flushes, a slot migration; counts exact
# (tests/redis-ha/run.sh; REDIS_HA_PROFILE=ci is what CI runs, ~1 min).
test-redis-ha: deps all tools
	BUILD=$(BUILD) tests/redis-ha/run.sh
.PHONY: test-redis-ha
# Kafka over SSL (client certificates) and SASL_SSL (PLAIN, SCRAM-SHA-512), and secrets that never
# show: two secured stacks (Kafka 4.3.1 and, for SCRAM with librdkafka 2.0.2, 3.9.1), ~1 min.
test-kafka-security: deps all tools
	BUILD=$(BUILD) tests/kafka-security/run.sh
.PHONY: test-kafka-security
# Redis refusals (tests/refusals/run.sh): OOM, READONLY, NOPERM, WRONGTYPE, BUSY and LOADING
# injected into a live run, each named by the log, /readyz and /metrics, counts exact after.
# Held 40 s each (past redis_outage_pause), ~7 min; REFUSALS_PROFILE=ci (4 s each) is what CI runs.
test-refusals: deps all tools
	BUILD=$(BUILD) tests/refusals/run.sh
.PHONY: test-refusals
