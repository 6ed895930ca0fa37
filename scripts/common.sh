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

# wait_closed PORT: return once no connection on local port PORT (a
# server's side) is open or closing: what the last run left has been torn
# down. A server that closes first keeps TIME-WAIT entries, which cost it
# nothing and are not waited for. After 10 s, say so and return.
wait_closed() {
    local states=(state established state syn-recv state fin-wait-1 state close-wait state last-ack state closing)
    for _ in $(seq 500); do
        if [ -z "$(ss -Htan "${states[@]}" "sport = :$1" | head -1)" ]; then return 0; fi
        sleep 0.02
    done
    echo "connections on port $1 still open after 10 s" >&2
}
