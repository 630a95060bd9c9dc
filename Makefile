# entramcp: `make test` is what CI runs (through .ci/run, with ENTRAMCP_REQUIRE_ALL=1).
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFILES      = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')

.PHONY: test lint vet staticcheck fmt-check unit bench fuzz build run clean

## test: everything CI checks: lint, then the race-enabled test suite
test: lint unit

## lint: go vet, staticcheck and gofmt
lint: vet staticcheck fmt-check

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## unit: all Go tests with the race detector (includes the CLI and emulator fidelity tests)
unit:
	$(GO) test -race -count=1 ./...

## bench: Go benchmarks, then the load tool against an in-process emulator
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench/load -scenario token-cc -c 32 -d 10s
	$(GO) run ./bench/load -scenario token-obo -c 32 -d 10s

## fuzz: a short run of every fuzz target (bad input must never panic or answer 5xx)
fuzz:
	$(GO) test ./emulator -run '^$$' -fuzz FuzzTokenEndpoint -fuzztime 30s
	$(GO) test ./emulator -run '^$$' -fuzz FuzzAuthorize -fuzztime 30s
	$(GO) test ./emulator -run '^$$' -fuzz FuzzFilter -fuzztime 30s
	$(GO) test ./emulator -run '^$$' -fuzz FuzzGraphQuery -fuzztime 30s
	$(GO) test ./oauthproxy -run '^$$' -fuzz FuzzProxyToken -fuzztime 30s
	$(GO) test ./oauthproxy -run '^$$' -fuzz FuzzProxyAuthorize -fuzztime 30s

## build: a static binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/entramcp ./cmd/entramcp

## run: the main job on embedded defaults
run:
	$(GO) run ./cmd/entramcp dev

clean:
	rm -rf bin .entramcp
