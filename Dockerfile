# ringwave in a container: built with the Rust toolchain, run as a non-root
# user on a slim Debian. docs/operations.md says how to run it.
#
#   DOCKER_BUILDKIT=1 docker build -t ringwave .
#   docker run --rm -p 9001:9001 --ulimit nofile=1048576:1048576 ringwave
#
# Docker's default seccomp profile blocks io_uring: the server then serves
# with epoll (the log says which backend it chose and why). To use io_uring,
# run with a profile that allows io_uring_setup, io_uring_enter and
# io_uring_register.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The registry and the target folder cached between builds (BuildKit); the
# binary copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ringwave \
    && cp target/release/ringwave /ringwave

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ringwave
COPY --from=build /ringwave /usr/local/bin/ringwave
COPY examples/ringwave.toml /etc/ringwave/ringwave.toml
USER 10001:10001
EXPOSE 9001 9443
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ringwave", "--config", "/etc/ringwave/ringwave.toml"]
# Inside a container the server must listen on every interface.
CMD ["--listen", "0.0.0.0:9001"]
