# stoa: the two commands that matter are `make run` and `make test`.
GO ?= go
STATICCHECK_VERSION ?= v0.6.1

.PHONY: run test deps build vet lint unit fuzz-smoke docs

run:
	$(GO) run ./cmd/stoa dev

build:
	$(GO) build -o bin/stoa ./cmd/stoa

# test: everything CI runs. Installs what the tests need (Debian packages
# for the third-party clients) when run as root; otherwise says what to install.
test: deps vet lint unit

deps:
	@bash scripts/test-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

lint:
	@bash scripts/staticcheck.sh $(STATICCHECK_VERSION)

unit:
	STOA_REQUIRE_CLIENTS=1 $(GO) test -race -timeout 20m ./...

docs:
	$(GO) run ./cmd/stoa config docs > docs/configuration.md
