# The two commands of the README: `make run` starts the server on its
# embedded defaults; `make test` installs what the tests need and runs them all.

GO ?= go

.PHONY: run test deps vet build bench-tenancy

run:
	$(GO) run ./cmd/lectern serve

build:
	$(GO) build -o lectern ./cmd/lectern

# deps installs the system packages the test suite uses (none yet beyond Go;
# tesseract joins with the OCR issue). It is a no-op when they are present.
deps:
	@command -v $(GO) >/dev/null || { echo "Go is required: https://go.dev/dl/"; exit 1; }

vet:
	$(GO) vet ./...

test: deps vet
	$(GO) test -race -count=1 ./...

bench-tenancy:
	bash bench/tenancy.sh
