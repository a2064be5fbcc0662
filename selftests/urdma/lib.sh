# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Shared by selftests/urdma/*.sh and scripts/bench-urdma (sourced, in the VM).
#
# The network: one veth "cable" between two "hosts", everything in the
# initial network namespace (rxe opens its UDP socket and looks up its routes
# in init_net only, so an rxe device in another namespace never receives):
#
#   host A: vethA   kernel 10.88.0.3 + rxe1    urdma (DPDK af_packet) 10.88.0.2
#   host B: vethB   kernel 10.88.0.1 + rxe0    urdma (DPDK af_packet) 10.88.0.4
#
# Each urdma address belongs to no kernel interface: urdma answers ARP for it,
# the kernel drops the frames sent to it (not local, forwarding off).  Every
# pair, rxe-rxe, urdma-rxe, urdma-urdma, crosses the same veth.  Two rxe
# devices in one namespace would reach each other through lo (the destination
# is a local address) and rxe drops what arrives on lo, so each rxe device's
# traffic is forced out of its own interface by policy routing (rules
# "oif vethX lookup T" before the local table) and accepted with a local
# source address (accept_local).  arp_ignore=1: a kernel interface answers ARP
# only for its own address, never for an address of the other host.
#
# Connection set-up (TCP, rc_pingpong/perftest exchanges) does not cross the
# veth: a client connects to a kernel address of this namespace (URDMA_TCP, or
# 10.88.0.1), over lo.  A urdma server therefore listens on INADDR_ANY.

U_IF_A=vethA
U_IF_B=vethB
RXE0=rxe0 RXE0_IP=10.88.0.1 # on vethB
RXE1=rxe1 RXE1_IP=10.88.0.3 # on vethA
URDMA_A_IP=10.88.0.2        # urdma on vethA
URDMA_B_IP=10.88.0.4        # urdma on vethB
URDMA_TCP=127.0.0.1         # where a client finds any server (over lo)
URDMA_GID_IDX=1             # ::ffff:IPv4 GID of rxe0/rxe1

U_ROOT=${U_ROOT:-$(cat "$(dirname "${BASH_SOURCE[0]}")/fastpath-root" 2>/dev/null ||
	(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd))}
URDMA_BIN=${URDMA_BIN:-$U_ROOT/build/tools/urdma}
U_WORK=${U_WORK:-$(mktemp -d /tmp/urdma-test.XXXXXX)}
U_PORT=${U_PORT:-19000} # next TCP port for an exchange; u_port hands them out

# The urdma back-end spec for host a or b, ready for a shell command line.
# With U_QDISC=1 the af_packet port sends through the interface's qdisc
# (qdisc_bypass=0), so that tc netem there affects urdma's packets too: the
# PMD bypasses the qdisc by default (seen in the VM: netem on the interface
# counted none of its frames).
u_backend() {
	local ifc ip
	case $1 in
	a | A) ifc=$U_IF_A ip=$URDMA_A_IP ;;
	b | B) ifc=$U_IF_B ip=$URDMA_B_IP ;;
	*) echo "u_backend: host a or b, not '$1'" >&2; return 1 ;;
	esac
	if [[ ${U_QDISC:-0} == 1 ]]; then
		echo "'dpdk:dev=\"net_af_packet0,iface=$ifc,qdisc_bypass=0\",ip=$ip'"
	else
		echo "dpdk:iface=$ifc,ip=$ip"
	fi
}

# The next free TCP port for an exchange, in U_PORT (not printed: a $(...)
# would increment a copy).
u_port() { U_PORT=$((U_PORT + 1)); }

u_sysctl() { sysctl -qw "$@" >/dev/null; }

u_net_down() {
	local d
	for d in $RXE0 $RXE1; do rdma link delete $d 2>/dev/null; done
	ip link del $U_IF_A 2>/dev/null
	for t in 201 202; do
		ip rule del pref 10 lookup $t 2>/dev/null
		ip route flush table $t 2>/dev/null
	done
	true
}

# Builds the network described at the top; idempotent (tears down first).
u_net_up() {
	u_net_down
	# the local table after the per-interface rules (pref 10)
	if ip rule show pref 0 | grep -q 'lookup local'; then
		ip rule add pref 100 lookup local && ip rule del pref 0 lookup local || return 1
	fi
	u_sysctl net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.conf.all.accept_local=1 net.ipv4.ip_forward=0 \
		net.core.netdev_max_backlog=16384 # a burst of 64 KiB messages overflowed 1000
	ip link add $U_IF_A type veth peer name $U_IF_B || return 1
	local ifc ip t
	for spec in "$U_IF_A $RXE1_IP 201" "$U_IF_B $RXE0_IP 202"; do
		read -r ifc ip t <<<"$spec"
		u_sysctl net.ipv4.conf.$ifc.rp_filter=0 net.ipv4.conf.$ifc.accept_local=1
		ip link set $ifc mtu 1500 up
		ip addr add $ip/24 dev $ifc
		ip rule add pref 10 oif $ifc lookup $t
		ip route add 10.88.0.0/24 dev $ifc src $ip table $t
	done
	rdma link add $RXE0 type rxe netdev $U_IF_B || return 1
	rdma link add $RXE1 type rxe netdev $U_IF_A || return 1
	# GID index 1 must be the IPv4-mapped one (it appears when the address does)
	local i
	for i in $(seq 50); do
		u_gid $RXE0 | grep -q "0a58:0001$" && u_gid $RXE1 | grep -q "0a58:0003$" && return 0
		sleep 0.1
	done
	echo "# rxe GIDs did not appear: $RXE0 $(u_gid $RXE0), $RXE1 $(u_gid $RXE1)"
	return 1
}

u_gid() { cat /sys/class/infiniband/$1/ports/1/gids/$URDMA_GID_IDX 2>/dev/null; }

# ---- processes ----

# Waits until something listens on TCP port $1 (or $2 deciseconds pass, or
# pid $3 dies), in network namespace $U_LISTEN_NS if set.
u_wait_listen() {
	local port=$1 n=${2:-300} pid=${3:-} i ns=()
	[[ -n ${U_LISTEN_NS:-} ]] && ns=(ip netns exec "$U_LISTEN_NS")
	for ((i = 0; i < n; i++)); do
		"${ns[@]}" ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && return 0
		[[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}

# u_pair NAME TIMEOUT PORT "SERVER CMD" "CLIENT CMD"
# Runs a server in the background, waits for its TCP port (PORT -: does not
# wait, the client finds the server on its own), runs the client;
# output in $U_WORK/NAME.{server,client}.log.  Returns 0 only if both exit 0.
# Sets U_SRV_RC and U_CLI_RC.
u_pair() {
	local name=$1 to=$2 port=$3 scmd=$4 ccmd=$5 spid
	local sl=$U_WORK/$name.server.log cl=$U_WORK/$name.client.log
	timeout -k 3 "$to" bash -c "$scmd" >"$sl" 2>&1 &
	spid=$!
	if [[ $port != - ]] && ! u_wait_listen "$port" $((to * 10)) $spid; then
		echo "# $name: the server did not listen on port $port" >>"$cl"
		kill $spid 2>/dev/null
	fi
	U_CLI_RC=0
	timeout -k 3 "$to" bash -c "$ccmd" >"$cl" 2>&1 || U_CLI_RC=$?
	U_SRV_RC=0
	wait $spid || U_SRV_RC=$?
	[[ $U_SRV_RC == 0 && $U_CLI_RC == 0 ]]
}

# Prints the tail of a pair's logs as TAP comments.
u_pair_logs() {
	local name=$1 n=${2:-8}
	echo "# --- $name server (exit $U_SRV_RC):"
	tail -n "$n" "$U_WORK/$name.server.log" | sed 's/^/#   /'
	echo "# --- $name client (exit $U_CLI_RC):"
	tail -n "$n" "$U_WORK/$name.client.log" | sed 's/^/#   /'
}

# ---- perftest output ----

# The result row of a perftest log (the first line after the #bytes header):
# latency tools: bytes iters t_min t_max t_typical t_avg t_stdev p99 p99.9
# bandwidth tools: bytes iters bw_peak bw_avg msg_rate   (MB/s = MiB/s)
u_perftest_rows() {
	awk '/#bytes/ { h = 1; next } h && /^ *[0-9]+ +[0-9]+ / { print } /^-+$/ && h { h = 0 }' "$1"
}

# ---- counters ----

# Writes "name value" for every hw counter of rxe device $1.
u_hw_counters() { # (builtins only: a fork costs milliseconds under TCG)
	local f v
	for f in /sys/class/infiniband/$1/ports/1/hw_counters/*; do
		[[ ${f##*/} == lifespan ]] && continue
		read -r v <"$f"
		echo "${f##*/} $v"
	done
}

# u_counter_delta BEFORE AFTER: "name delta" for each counter that changed.
u_counter_delta() {
	awk 'NR == FNR { b[$1] = $2; next } ($2 - b[$1]) != 0 { print $1, $2 - b[$1] }' "$1" "$2"
}

# Udp/Ip counters of /proc/net/snmp as "Proto:Name value".
u_snmp() {
	awk '{ if (seen[$1]++) { for (i = 2; i <= NF; i++) print $1 h[$1 i], $i }
	       else for (i = 2; i <= NF; i++) h[$1 i] = $i }' /proc/net/snmp |
		grep -E '^(Ip|Udp):'
}

u_if_stat() { cat /sys/class/net/$1/statistics/$2; }

# Packets the kernel's per-CPU input backlogs dropped so far (all CPUs).
u_softnet_drops() {
	local a b s=0
	while read -r a b _; do s=$((s + 16#$b)); done </proc/net/softnet_stat
	echo $s
}

# Counters that only say packets arrived late or twice: on veth a sender
# that runs on two CPUs one after the other reorders its own packets (each
# CPU's input backlog is processed on its own), and rxe's retransmission
# timer fires early now and then under TCG; an RNR NAK is flow control.
# Reported, not errors.
U_SOFT_COUNTERS='^(rcvd_seq_err|out_of_seq_request|duplicate_request|completer_retry_err|ack_deferred|rcvd_rnr_err|send_rnr_err) '
# Counters that are errors on a link that loses nothing.  (send_err also
# counts packets a full per-CPU input backlog refused (softnet drops), which
# u_hard_errors forgives.)
U_HARD_COUNTERS='^(retry_exceeded_err|retry_rnr_exceeded_err|send_err|link_downed) '

# u_hard_errors "COUNTER DELTAS" SOFTNET_DROPS: the hard error counters that
# moved, send_err only beyond what the input backlogs dropped.
u_hard_errors() {
	local sn=$2
	grep -E "$U_HARD_COUNTERS" <<<"$1" | awk -v sn="$sn" '
		$1 == "send_err" { se += $2; next } { print }
		END { if (se > sn) print "send_err", se, "(softnet drops " sn ")" }'
}

# ---- netem ----
u_netem() { # IF ARGS...: replace the root qdisc of IF by netem ARGS
	local ifc=$1
	shift
	tc qdisc replace dev "$ifc" root netem "$@"
}
u_netem_off() { tc qdisc del dev "$1" root 2>/dev/null; true; }
# Packets netem dropped on IF so far.
u_netem_drops() { tc -s qdisc show dev "$1" | awk '/dropped/ { sub(",", "", $7); print $7; exit }'; }

# u_netem_window DURATION ARGS...: netem ARGS on both ends of the link for
# DURATION seconds, from the moment traffic flows (20 more frames through
# vethA than when called: a run's set-up, DPDK's EAL above all, can take
# seconds under TCG), in the background (U_NETEM_PID).  A run must end on a
# clean link: rc_pingpong and perftest destroy their QPs as soon as their
# own last completion arrives, so a peer whose last ACK was lost would
# retransmit to a QP that is gone, for ever (retry_cnt 7).  Pick iterations
# that outlast the window.  Drop counts go to $U_WORK/netem.drops, the
# qdisc statistics to $U_WORK/netem.stats.
u_netem_window() {
	local d=$1
	shift
	local args=("$@")
	rm -f "$U_WORK/netem.drops" "$U_WORK/netem.stats"
	(
		# builtins only while waiting: under TCG a fork costs milliseconds,
		# and a fast run must not end before the window opens
		frames() { # sets F (no $(...): that forks too)
			local rx tx
			read -r rx </sys/class/net/$U_IF_A/statistics/rx_packets
			read -r tx </sys/class/net/$U_IF_A/statistics/tx_packets
			F=$((rx + tx))
		}
		local nap base
		exec {nap}<> <(:) # a pipe nobody writes: read -t on it is a sleep without a fork
		frames
		base=$F
		for ((i = 0; i < 6000; i++)); do
			frames
			((F - base >= 20)) && break
			read -rt 0.02 -u $nap || true
		done
		u_netem $U_IF_A "${args[@]}" && u_netem $U_IF_B "${args[@]}" ||
			{ echo "# u_netem_window: tc failed" >&2; exit 1; }
		sleep "$d"
		echo "$(u_netem_drops $U_IF_A) $(u_netem_drops $U_IF_B)" >"$U_WORK/netem.drops"
		{ tc -s qdisc show dev $U_IF_A; tc -s qdisc show dev $U_IF_B; } >"$U_WORK/netem.stats"
		u_netem_off $U_IF_A
		u_netem_off $U_IF_B
	) &
	U_NETEM_PID=$!
}
# Waits for the window to close; prints "dropped A B".  Call it in the shell
# that opened the window (not in $(...) or <(...)): only there is the window
# a child that wait can wait for.
u_netem_window_end() {
	wait "$U_NETEM_PID" 2>/dev/null
	cat "$U_WORK/netem.drops" 2>/dev/null
}

# Permanent neighbour entries for every address on the link, so that a lost
# ARP packet cannot fail a QP's RTR transition (rdma_resolve_ip waits 1 s)
# while netem drops packets.
u_static_neigh() {
	local ma mb
	ma=$(cat /sys/class/net/$U_IF_A/address)
	mb=$(cat /sys/class/net/$U_IF_B/address)
	ip neigh replace $URDMA_A_IP lladdr "$ma" dev $U_IF_B nud permanent
	ip neigh replace $RXE1_IP lladdr "$ma" dev $U_IF_B nud permanent
	ip neigh replace $URDMA_B_IP lladdr "$mb" dev $U_IF_A nud permanent
	ip neigh replace $RXE0_IP lladdr "$mb" dev $U_IF_A nud permanent
}

# ---- TAP (nested in the kselftest runner's output) ----
U_TAP_N=0 U_TAP_FAIL=0 U_TAP_PASS=0 U_TAP_SKIP=0
u_plan() { echo "1..$1"; }
u_ok() { U_TAP_N=$((U_TAP_N + 1)); U_TAP_PASS=$((U_TAP_PASS + 1)); echo "ok $U_TAP_N $*"; }
u_fail() { U_TAP_N=$((U_TAP_N + 1)); U_TAP_FAIL=$((U_TAP_FAIL + 1)); echo "not ok $U_TAP_N $*"; }
u_skip() { # NAME REASON
	U_TAP_N=$((U_TAP_N + 1)); U_TAP_SKIP=$((U_TAP_SKIP + 1))
	echo "ok $U_TAP_N $1 # SKIP $2"
}
u_check() { # NAME CMD...: ok if CMD succeeds
	local name=$1
	shift
	if "$@"; then u_ok "$name"; else u_fail "$name"; fi
}
# Exit status for the kselftest runner: 1 on any failure, 4 (KSFT_SKIP) if
# everything skipped, else 0.
u_exit() {
	echo "# $U_TAP_PASS passed, $U_TAP_FAIL failed, $U_TAP_SKIP skipped"
	((U_TAP_FAIL > 0)) && exit 1
	((U_TAP_PASS == 0 && U_TAP_SKIP > 0)) && exit 4
	exit 0
}

# The urdma tools a test needs; prints the missing ones.
u_missing_tools() {
	local t miss=()
	for t in "$@"; do [[ -x "$URDMA_BIN/$t" ]] || miss+=("$t"); done
	echo "${miss[*]}"
}

# u_skip_all_if_missing PLAN_COUNT "case names..." TOOLS...: when a tool is
# missing, says so loudly, reports every case as skipped and exits 4.
u_require_tools() {
	local count=$1 names=$2
	shift 2
	local miss
	miss=$(u_missing_tools "$@")
	[[ -z "$miss" ]] && return 0
	echo "# ################################################################"
	echo "# SKIP: urdma tool(s) not built: $miss"
	echo "#       (looked in $URDMA_BIN; build them with: make tools)"
	echo "# ################################################################"
	u_plan "$count"
	local n
	for n in $names; do u_skip "$n" "urdma tool(s) missing: $miss"; done
	exit 4
}

u_require_root_tools() { # the platform's own programs
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "# SKIP: $t not installed (scripts/install-deps.sh)"; exit 4; }
	done
}

# ---- urdma against rxe0 ----

# u_interop NAME TEST SIZE ITERS ROLE [EXTRA]: one perftest-protocol run
# between urdma on vethA and rxe0.  ROLE urdma-client: urdma-perf connects
# to ib_TEST on rxe0; rxe-client: ib_TEST on rxe0 connects to urdma-perf.
# SIZE "-" for atomics.  urdma-perf's JSON in $U_WORK/NAME.json.
u_interop() {
	local name=$1 t=$2 s=$3 n=$4 role=$5 extra=${6:-} sz=""
	[[ $s != - ]] && sz="-s $s"
	u_port
	local p=$U_PORT
	local ib="ib_$t -d $RXE0 -x 1 -F -p $p -n $n $sz"
	local ur="$URDMA_BIN/urdma-perf $t --backend $(u_backend a) -p $p -n $n $sz --json $U_WORK/$name.json $extra"
	if [[ $role == urdma-client ]]; then
		u_pair "$name" 120 $p "$ib" "$ur $RXE0_IP"
	else
		u_pair "$name" 120 $p "$ur" "$ib $URDMA_TCP"
	fi
}

# The figures row a run's client printed, or "" (also when perftest printed
# inf/nan: its CPU-frequency estimate fails when other threads spin).
u_client_row() {
	local row
	row=$(u_perftest_rows "$U_WORK/$1.client.log" | tail -1)
	echo "$row"
}
