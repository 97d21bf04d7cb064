# Lectern in one image: `docker build -t lectern .` (see compose.yaml and the
# README's "Packaging" section).

# The builder runs the build command of `make build`. CGO_ENABLED=0 makes the
# binary static (the SQLite driver is pure Go), so it does not depend on the
# builder's glibc being no newer than the runtime's.
FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
# The whole checkout, .git included, so that the Go toolchain stamps the VCS
# revision that `lectern version` prints.
COPY . .
RUN go build -o lectern ./cmd/lectern

# The runtime: what `make deps` installs for the OCR and PDF code (tesseract
# with chi_sim and eng data, poppler-utils, the CJK fonts), and CA
# certificates for the LLM providers.
FROM debian:bookworm-slim
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng poppler-utils \
		fonts-noto-cjk fonts-droid-fallback ca-certificates \
	&& rm -rf /var/lib/apt/lists/*
# A non-root user owns the volumes, and /demo: `serve --demo` puts the demo
# tenants beside DATA_DIR.
RUN useradd --system --user-group --uid 10001 --no-create-home --shell /usr/sbin/nologin lectern \
	&& mkdir -p /data /uploads /demo \
	&& chown lectern:lectern /data /uploads /demo
COPY --from=build /src/lectern /usr/local/bin/lectern
# The config store lives in the data volume (its default is relative to the
# working directory). The image listens on every interface, so open mode
# would refuse to start (see checkOpenMode): AUTH_REQUIRED=1 turns
# authentication on, with AUTH_TOKEN_SECRET when given, else a secret
# generated once into /data/_system/auth_token_secret. Set AUTH_REQUIRED=0
# only to serve open on purpose.
ENV DATA_DIR=/data \
	UPLOADS_DIR=/uploads \
	TENANT_DB_PATH=/data/_system/tenants.sqlite3 \
	LECTERN_ADDR=0.0.0.0:8000 \
	AUTH_REQUIRED=1
VOLUME ["/data", "/uploads"]
USER lectern
WORKDIR /data
EXPOSE 8000
ENTRYPOINT ["lectern"]
CMD ["serve"]
