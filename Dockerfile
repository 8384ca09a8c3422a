# dlserve in a container: build with the Swift toolchain image, run on plain Debian with only the
# shared libraries it links. Serves the models given as arguments over HTTP (KServe/Triton v2) on
# port 8080 inside the container. See docs/kserve.md.
#
#   docker build -t dlserve .
#   docker run --rm -p 8080:8080 -v "$PWD/models:/models:ro" dlserve /models/mlp.onnx
#
# Stage 1: build (Swift on Debian 12, the libraries DLKit builds against).
FROM swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        libprotobuf-c-dev libhdf5-dev libopenblas-dev pkg-config \
        libpng-dev libjpeg62-turbo-dev libtiff-dev libwebp-dev libopenjp2-7-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product dlserve --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/dlserve" /dlserve

# Stage 2: run (Debian 12 with the runtime libraries only; no toolchain, no headers).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libprotobuf-c1 libhdf5-103-1 libopenblas0-pthread \
        libpng16-16 libjpeg62-turbo libtiff6 libwebp7 libopenjp2-7 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 dlserve
COPY --from=build /dlserve /usr/local/bin/dlserve
USER dlserve
EXPOSE 8080
# 0.0.0.0 inside the container: the port mapping (or the pod network) decides who can reach it.
ENTRYPOINT ["dlserve", "--http", "8080", "--host", "0.0.0.0"]
