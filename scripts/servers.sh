# Sourced by scripts/bench.sh and scripts/audit-cost.sh: start, wait for and
# stop the servers they measure. The sourcing script sets ME (its name, for
# messages) and PYTHON.

stop_group() { # pid: SIGTERM the process group, SIGKILL after 10s
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

free_ports() { # n: n consecutive loopback ports, free now, below the ephemeral range
  "$PYTHON" "$ROOT/scripts/freeports.py" "$1"
}

wait_port() { # port pid log: until the port accepts, or fail if pid died
  local port="$1" pid="$2" log="$3" i
  for i in $(seq 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$ME: server exited before listening on $port:" >&2; tail -n 30 "$log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "$ME: nothing listening on $port after 60s:" >&2; tail -n 30 "$log" >&2; return 1
}
