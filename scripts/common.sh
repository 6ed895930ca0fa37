# Helpers the benchmark scripts share; sourced, not run.

# wait_port PORT WHAT: return once something listens on 127.0.0.1:PORT;
# after 10 s say that WHAT did not start and exit 1.
wait_port() {
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "${2:-something on port $1} did not start" >&2
    exit 1
}

# free_port: print a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
