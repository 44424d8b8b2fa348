#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/corpus/<target>/<name>.

Run from anywhere: python3 fuzz/make_seeds.py. It rewrites only the files it
names (descriptive names, never 40 hex digits, so .gitignore keeps them) and
leaves whatever libFuzzer added alone. The input layouts are described at the
top of each fuzz_targets/*.rs file.
"""

import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
DATA = FUZZ.parent / "tests" / "data"
CORPUS = FUZZ / "corpus"


def u32(*values):
    return b"".join(struct.pack(">I", v & 0xFFFFFFFF) for v in values)


def u64(value):
    return struct.pack(">Q", value)


def opaque(data, pad=b"\0"):
    padding = (4 - len(data) % 4) % 4
    return u32(len(data)) + data + pad * padding


def fragment(data, last):
    return u32(len(data) | (0x80000000 if last else 0)) + data


def records(stream):
    """The records of a stream of single-fragment records."""
    out = []
    while stream:
        (header,) = struct.unpack(">I", stream[:4])
        length = header & 0x7FFFFFFF
        out.append(stream[4 : 4 + length])
        stream = stream[4 + length :]
    return out


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


# Credential bodies.
AUTH_SYS = u32(0x5057_0001) + opaque(b"peer1.example") + u32(0, 0) + u32(2, 0, 10)
AUTH_SYS_DIRTY_PADDING = u32(7) + opaque(b"node1", b"\xff") + u32(1000, 1000, 0)
AUTH_SYS_LIMITS = u32(1) + opaque(b"h" * 255) + u32(0, 0) + u32(16, *range(16))
GLUSTERFS_V2 = u32(1234, 0, 0) + u32(1, 0) + opaque(bytes(range(8)))
GLUSTERFS_V3 = u32(0xFFFF_FFFF, 0, 0, 1, 123_456_789) + u64(1_700_000_000) + u32(2, 0, 1) + opaque(bytes(8))

# Flavor selectors (mod 5): 0 NONE, 1 SYS, 2 GLUSTERFS_v2, 3 GLUSTERFS_v3, 4 the value itself.
SELECT_NONE, SELECT_SYS, SELECT_V2, SELECT_V3 = u32(0), u32(1), u32(2), u32(3)
SELECT_OTHER = u32(6 * 5 + 4)  # flavor 34

# A call carrying each credential, for the message target.
def call(xid, cred_flavor, cred_body, args=b""):
    return u32(xid, 0, 2, 1238437, 2, 1) + u32(cred_flavor) + opaque(cred_body) + u32(0) + opaque(b"") + args


def server_connection_seeds(bins, null_call):
    """Seeds for server_connection: control byte (flags: bits 0-1 = the
    in-progress limit less one, bit 2 = tight record limits) and read sizes,
    then a length byte and that many schedule bytes (low 2 bits = outcome
    Ok/PROC_UNAVAIL/GARBAGE_ARGS/SYSTEM_ERR, high 6 bits = delay), then the
    stream."""

    def seed(flags, sizes, schedule, stream):
        control = bytes([(flags << 4) | len(sizes)]) + bytes(sizes)
        return control + bytes([len(schedule)]) + bytes(schedule) + stream

    # Delays 0, 5, 1, 9 with each outcome in turn.
    mixed = [0 << 2 | 0, 5 << 2 | 1, 1 << 2 | 2, 9 << 2 | 3]
    for path in bins:
        # Calls and replies alike (the replies are dropped); limit 4.
        write("server_connection", path.stem, seed(3, [7, 40], mixed, path.read_bytes()))

    def capture(name):
        return (DATA / f"{name}.bin").read_bytes()

    dump = capture("glusterd_gf_dump_call")
    ping = capture("glusterd_gf_ping_call")
    portmap_dump = capture("portmap_dump_call")
    # NULL, PROG_MISMATCH, three dispatches and the probe stream, back to
    # back: a limit of 1 stops reading after each dispatch.
    back_to_back = (
        capture("glusterd_null_call")
        + capture("rpcinfo_v5_null_call")
        + dump
        + ping
        + portmap_dump
        + capture("rpcinfo_probe_calls_stream")
    )
    write("server_connection", "back_to_back_limit_1", seed(0, [255], [3 << 2], back_to_back))
    write("server_connection", "back_to_back_limit_4", seed(3, [13], mixed, back_to_back))
    # Long handlers, finishing out of order, one byte per read.
    write("server_connection", "out_of_order", seed(3, [], [40 << 2, 2 << 2 | 1, 20 << 2 | 3], back_to_back))

    dump_record = records(dump)[0]
    split = fragment(dump_record[:5], False) + fragment(b"", False) + fragment(dump_record[5:30], False) + fragment(dump_record[30:], True)
    write("server_connection", "call_in_fragments", seed(1, [3, 11], mixed, split + ping))
    write("server_connection", "call_in_fragments_tight", seed(5, [64], mixed, split + ping))

    reply = capture("rpcbind_null_reply")
    write("server_connection", "reply_dropped_between_calls", seed(1, [50], mixed, dump + reply + ping))

    malformed = {
        # XID 9, CALL, then a truncated header: GARBAGE_ARGS.
        "malformed_call_header": fragment(u32(9, 0, 2), True),
        # A call whose credential length runs past the record: GARBAGE_ARGS.
        "malformed_call_cred": fragment(u32(10, 0, 2, 100000, 2, 1, 1, 400), True),
        # Message type 7, and a record too short for an XID and a type: dropped.
        "malformed_type": fragment(u32(11, 7, 2), True),
        "malformed_short": fragment(b"\0\0\0\x0c\0\0", True),
        "malformed_empty": fragment(b"", True),
        # RPC version 3: RPC_MISMATCH 2..2.
        "rpc_version_3": fragment(u32(12, 0, 3, 100000, 2, 1, 0, 0, 0, 0), True),
    }
    for name, record in malformed.items():
        write("server_connection", name, seed(1, [9], mixed, dump + record + ping))

    # Record-marking errors after calls in progress: each call before the
    # error still gets its answer.
    write("server_connection", "fragment_over_limit", seed(3, [200], [30 << 2], dump + ping + u32(0x8000_0101) + bytes(8)))
    write("server_connection", "too_many_fragments_tight", seed(7, [17], mixed, dump + fragment(b"", False) * 5))
    write("server_connection", "truncated_after_calls", seed(2, [20], mixed, dump + ping + fragment(null_call, True)[:30]))


def hello_reply_seeds():
    """Seeds for hello_reply: a flags byte (bit 0 = TLS, bit 1 = no CN,
    bit 2 = the observed address must match, bit 3 = the XID is the
    record's own), then one reply record."""
    xid = 0x5EED
    success = u32(xid, 1, 0, 0, 0, 0)  # REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS

    def results(node, family, address, scope=0, port=40000):
        return opaque(node) + u32(family) + opaque(address) + u32(scope, port, 1)

    v4 = bytes([192, 0, 2, 10])
    write("hello_reply", "accepted", b"\x04" + success + results(b"server", 4, v4))
    write("hello_reply", "accepted_tls", b"\x05" + success + results(b"server", 4, v4))
    write("hello_reply", "accepted_mapped", b"\x04" + success + results(b"server", 6, bytes(10) + b"\xff\xff" + v4))
    write("hello_reply", "observed_elsewhere", b"\x04" + success + results(b"server", 4, bytes([198, 51, 100, 7])))
    write("hello_reply", "observed_elsewhere_allowed", b"\x00" + success + results(b"server", 4, bytes([198, 51, 100, 7])))
    write("hello_reply", "link_local", b"\x04" + success + results(b"server", 6, b"\xfe\x80" + bytes(13) + b"\x0a", 3))
    write("hello_reply", "wrong_peer", b"\x04" + success + results(b"impostor", 4, v4))
    write("hello_reply", "tls_without_cn", b"\x07" + success + results(b"server", 4, v4))
    write("hello_reply", "wrong_xid", b"\x04" + u32(xid + 1, 1, 0, 0, 0, 0) + results(b"server", 4, v4))
    write("hello_reply", "auth_error", b"\x04" + u32(xid, 1, 1, 1, 5))
    write("hello_reply", "prog_unavail", b"\x04" + u32(xid, 1, 0, 0, 0, 1))
    write("hello_reply", "a_call", b"\x0c" + call(7, 0, b""))
    write("hello_reply", "bad_port", b"\x04" + success + results(b"server", 4, v4, 0, 70000))


def main():
    bins = sorted(DATA.glob("*.bin"))
    assert bins, f"no captures in {DATA}"
    # Control bytes for the stream targets: low 4 bits = number of read
    # sizes that follow, high bits = target flags.
    controls = [b"\x00", b"\x01\x05", b"\x03\x01\x07\x40", b"\x01\xff", b"\x12\x00\x03"]
    for i, path in enumerate(bins):
        stream = path.read_bytes()
        control = controls[i % len(controls)]
        write("record_decoder", path.stem, control + stream)
        write("codec_stream", path.stem, control + stream)
        recs = records(stream)
        if len(recs) == 1:
            write("message", path.stem, recs[0])
        else:
            for n, rec in enumerate(recs):
                write("message", f"{path.stem}_{n}", rec)

    # Record marking beyond the captures.
    null_call = records((DATA / "rpcinfo_null_call.bin").read_bytes())[0]
    three = fragment(null_call[:7], False) + fragment(b"", False) + fragment(null_call[7:], True)
    hand = {
        "three_fragments": b"\x02\x03\x05" + three,
        "fragment_over_limit": b"\x00" + u32(0x8000_1001) + bytes(8),
        "record_over_limit": b"\x00" + (fragment(bytes(4096), False) * 4) + fragment(b"x", True),
        "too_many_fragments": b"\x01\x40" + fragment(b"", False) * 65,
        "truncated_header": b"\x01\x10" + fragment(null_call, True) + b"\x80\x00",
        "truncated_data": b"\x00" + u32(0x8000_0010) + b"abc",
    }
    for name, data in hand.items():
        write("record_decoder", name, data)
        write("codec_stream", name, data)
    # Written back in 7-byte fragments (flag bits 1-2 = 2).
    write("codec_stream", "three_fragments_write_back_7", b"\x42\x03\x05" + three)

    server_connection_seeds(bins, null_call)
    hello_reply_seeds()

    write("message", "call_auth_sys", call(1, 1, AUTH_SYS, u32(0xCAFE)))
    write("message", "call_glusterfs_v2", call(2, 390039, GLUSTERFS_V2))
    write("message", "call_glusterfs_v3", call(3, 390040, GLUSTERFS_V3, u64(0xCAFE)))
    write("message", "call_dirty_padding", call(4, 1, AUTH_SYS_DIRTY_PADDING))
    write("message", "reply_denied_rpc_mismatch", u32(5, 1, 1, 0, 2, 2))
    write("message", "reply_denied_auth_error", u32(6, 1, 1, 1, 1))

    write("auth", "none_empty", SELECT_NONE)
    write("auth", "sys", SELECT_SYS + AUTH_SYS)
    write("auth", "sys_dirty_padding", SELECT_SYS + AUTH_SYS_DIRTY_PADDING)
    write("auth", "sys_at_limits", SELECT_SYS + AUTH_SYS_LIMITS)
    write("auth", "glusterfs_v2", SELECT_V2 + GLUSTERFS_V2)
    write("auth", "glusterfs_v3", SELECT_V3 + GLUSTERFS_V3)
    write("auth", "other_flavor", SELECT_OTHER + b"opaque to us")

    for name, text in {
        "v4": "192.0.2.10",
        "v4_port": "192.0.2.10:24007",
        "v6": "2001:db8::10",
        "v6_port": "[2001:db8::10]:24007",
        "link_local_name": "fe80::a%eth0",
        "link_local_index": "fe80::a%3",
        "link_local_name_port": "[fe80::a%eth0]:24007",
    }.items():
        write("scoped_addr", name, text.encode())


if __name__ == "__main__":
    main()
