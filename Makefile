# Tollgate: two commands set everything up on a fresh Debian machine.
#   make run    install what is missing, build, serve config/tollgate.yaml on :4000
#   make test   install, build with ASan+UBSan, run every test
# Others: make build | make bench | make fuzz | make format | make clean

CONFIG ?= config/tollgate.yaml
JOBS   ?= $(shell nproc)
FUZZ_SECONDS ?= 60

.PHONY: all build run test unit integration e2e bench fuzz format clean deps

all: build

deps:
	@scripts/deps.sh run

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOLLGATE_TESTS=OFF >/dev/null
	@cmake --build build -j $(JOBS)

run: build
	./build/tollgate --config $(CONFIG)

build-asan/tollgate: FORCE
	@scripts/deps.sh test
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTOLLGATE_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
FORCE:

test: build-asan/tollgate
	@scripts/test.sh

unit: build-asan/tollgate
	@cd build-asan && ctest --output-on-failure

bench: build
	@scripts/deps.sh bench
	@tests/bench/run.sh

fuzz:
	@scripts/deps.sh fuzz
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTOLLGATE_FUZZ=ON -DTOLLGATE_TESTS=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
