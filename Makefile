# The two commands of the README: `make run` starts the server on its
# embedded defaults; `make test` installs what the tests need and runs them all.

GO ?= go

.PHONY: run test deps vet build bench-tenancy

run:
	$(GO) run ./cmd/lectern serve

build:
	$(GO) build -o lectern ./cmd/lectern

# deps installs the system packages the test suite uses (runtime: what a
# server needs too, and the Dockerfile's runtime image installs; testonly:
# the console's browser test): Go (checked only),
# and for internal/ocr tesseract with the chi_sim and eng data, poppler-utils
# (pdftotext, pdftoppm, pdfinfo), a CJK font for the test images
# (fonts-noto-cjk) and a CJK TrueType font assignment PDFs are rendered
# with (fonts-droid-fallback: fpdf embeds TrueType outlines only), and
# chromium, the headless browser the operator console's test drives. It runs
# apt-get (through sudo unless root) only when one of them is missing, so it
# is a no-op when they are present.
deps:
	@command -v $(GO) >/dev/null || { echo "Go is required: https://go.dev/dl/"; exit 1; }
	@runtime="tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng poppler-utils fonts-noto-cjk fonts-droid-fallback"; \
	testonly="chromium"; \
	pkgs="$$runtime $$testonly"; \
	ok=1; \
	for b in tesseract pdftotext pdftoppm pdfinfo chromium; do command -v $$b >/dev/null 2>&1 || ok=0; done; \
	if [ $$ok = 1 ]; then tesseract --list-langs 2>&1 | grep -qx chi_sim || ok=0; fi; \
	if [ $$ok = 1 ]; then tesseract --list-langs 2>&1 | grep -qx eng || ok=0; fi; \
	if [ $$ok = 1 ]; then find /usr/share/fonts /usr/local/share/fonts -iname '*cjk*' 2>/dev/null | grep -q . || ok=0; fi; \
	if [ $$ok = 1 ]; then [ -f /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || ok=0; fi; \
	if [ $$ok = 0 ]; then \
		command -v apt-get >/dev/null 2>&1 || { echo "deps: apt-get not found; install by hand: $$pkgs (tesseract with chi_sim and eng data, poppler-utils, a CJK font, chromium)"; exit 1; }; \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "deps: installing $$pkgs"; \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$pkgs || exit 1; \
	fi

vet:
	$(GO) vet ./...

test: deps vet
	$(GO) test -race -count=1 ./...

bench-tenancy:
	bash bench/tenancy.sh
